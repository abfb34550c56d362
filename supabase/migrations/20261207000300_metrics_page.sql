-- The read-only metrics page (docs/adr/0032-metrics-page.md, docs/adr/0033-viewer-sign-in.md):
--   * t_viewer_links / t_viewer_sessions: sign-in links and the sessions they open, tokens stored as hashes;
--   * mv_page_facts: one materialized view the page reads (hour buckets, reply latencies, topics);
--   * tenant-filtered readers, like public.stats_messages(), since materialized views cannot have RLS;
--   * public.refresh_metrics() refreshes it with the two older views.

-- Sign-in links and sessions ------------------------------------------------------------------------

create table public.t_viewer_links (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.t_tenants (id) on delete cascade,
  user_id uuid not null,                 -- the member (t_users) the link signs in
  token_hash text not null unique,       -- sha256 hex of the random token; the token itself is never stored
  created_by text not null default '',   -- who ran `mirage viewers link`
  expires_at timestamptz not null,
  revoked_at timestamptz,
  last_used_at timestamptz,
  created_at timestamptz not null default now(),
  unique (tenant_id, id),
  foreign key (tenant_id, user_id) references public.t_users (tenant_id, id) on delete cascade
);
comment on table public.t_viewer_links is
  'Sensitive: metrics page sign-in links (hash of the token only); revocable, expiring.';

create table public.t_viewer_sessions (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.t_tenants (id) on delete cascade,
  user_id uuid not null,
  link_id uuid,                          -- the link that opened it (null: a Supabase access token)
  session_hash text not null unique,     -- sha256 hex of the cookie value
  aal text not null default 'aal1' check (aal in ('aal1', 'aal2')),
  expires_at timestamptz not null,
  revoked_at timestamptz,
  last_seen_at timestamptz,
  created_at timestamptz not null default now(),
  foreign key (tenant_id, user_id) references public.t_users (tenant_id, id) on delete cascade,
  foreign key (tenant_id, link_id) references public.t_viewer_links (tenant_id, id) on delete cascade
);
create index t_viewer_sessions_user_idx on public.t_viewer_sessions (tenant_id, user_id);
create index t_viewer_links_user_idx on public.t_viewer_links (tenant_id, user_id);
comment on table public.t_viewer_sessions is
  'Sensitive: metrics page sessions (hash of the cookie only); ended by sign-out, revoke or expiry.';

select mirage_private.secure_table('public.t_viewer_links', writes => 'service', sensitive => true);
select mirage_private.secure_table('public.t_viewer_sessions', writes => 'service', sensitive => true);

-- Rounds by time, for the page's live round counts.
create index if not exists t_rounds_tenant_time_idx
  on public.t_rounds (tenant_id, (coalesce(started_at, created_at)));

-- The page's facts ----------------------------------------------------------------------------------
-- One row per (tenant, bot number, conversation, tenant-local day, kind, key):
--   kind 'hour'    key = local hour 0-23:  sent, received, delivered, read, failed
--   kind 'latency' key = whole seconds:     replies (bot replies that took that long)
--   kind 'topic'   key = meta.topic:        sent (messages sent on the topic), replies (answers they got)
-- Conventions are mv_stats_messages' (docs/database.md "Metrics"); a missing number or conversation is the
-- zero uuid, so the unique index (needed by REFRESH CONCURRENTLY) covers every row. A reply is an outgoing
-- message right after an incoming one in the thread of one number and one peer; an answer to a topic is an
-- incoming message right after an outgoing one that carried the topic. Neither crosses from one round into
-- another (the opener of the next round answers nobody).
create materialized view public.mv_page_facts as
with zones as (
  select t.id as tenant_id, coalesce(z.name, 'UTC') as zone
    from public.t_tenants t
    left join pg_catalog.pg_timezone_names z on z.name = t.timezone
), msgs as (
  select m.tenant_id,
         coalesce(case m.direction when 'out' then m.from_number_id else m.to_number_id end,
                  '00000000-0000-0000-0000-000000000000'::uuid) as number_id,
         coalesce(m.conversation_id, '00000000-0000-0000-0000-000000000000'::uuid) as conversation_id,
         case m.direction
           when 'out' then coalesce(m.contact_id::text, m.to_number_id::text, m.to_jid)
           else coalesce(m.contact_id::text, m.from_number_id::text, m.from_jid)
         end as peer,
         m.direction,
         m.status,
         nullif(m.meta ->> 'topic', '') as topic,
         m.round_id,
         coalesce(m.wa_ts, m.sent_at, m.created_at) as at,
         (coalesce(m.wa_ts, m.sent_at, m.created_at) at time zone zones.zone) as local_at
    from public.t_messages m
    join zones using (tenant_id)
   where m.created_at >= now() - interval '92 days'
), threads as (
  select msgs.*,
         lag(direction) over thread as prev_direction,
         lag(at) over thread as prev_at,
         lag(topic) over thread as prev_topic,
         lag(round_id) over thread as prev_round_id
    from msgs
   where direction = 'in' or status in ('sent', 'delivered', 'read')
  window thread as (partition by tenant_id, number_id, peer order by at, direction)
)
select tenant_id, number_id, conversation_id, local_at::date as day, 'hour'::text as kind,
       extract(hour from local_at)::int::text as key,
       count(*) filter (where direction = 'out' and status in ('sent', 'delivered', 'read')) as sent,
       count(*) filter (where direction = 'in') as received,
       count(*) filter (where direction = 'out' and status in ('delivered', 'read')) as delivered,
       count(*) filter (where direction = 'out' and status = 'read') as read,
       count(*) filter (where direction = 'out' and status = 'failed') as failed,
       0::bigint as replies
  from msgs
 group by 1, 2, 3, 4, 6
union all
select tenant_id, number_id, conversation_id, local_at::date, 'latency',
       round(extract(epoch from at - prev_at))::bigint::text,
       0, 0, 0, 0, 0, count(*)
  from threads
 where direction = 'out' and prev_direction = 'in' and peer is not null
   and not (round_id is not null and prev_round_id is not null and round_id <> prev_round_id)
 group by 1, 2, 3, 4, 6
union all
select tenant_id, number_id, conversation_id, local_at::date, 'topic', topic,
       count(*) filter (where direction = 'out'), 0, 0, 0, 0, 0
  from threads
 where direction = 'out' and topic is not null
 group by 1, 2, 3, 4, 6
union all
select tenant_id, number_id, conversation_id, local_at::date, 'answer', prev_topic,
       0, 0, 0, 0, 0, count(*)
  from threads
 where direction = 'in' and prev_direction = 'out' and prev_topic is not null and peer is not null
   and not (round_id is not null and prev_round_id is not null and round_id <> prev_round_id)
 group by 1, 2, 3, 4, 6
with data;
create unique index mv_page_facts_key on public.mv_page_facts (tenant_id, kind, day, number_id, conversation_id, key);
comment on materialized view public.mv_page_facts is
  'Metrics page facts per tenant-local day, bot number and conversation: hours, reply latencies, topics.';

revoke all on public.mv_page_facts from public, anon, authenticated;
grant select on public.mv_page_facts to service_role;

-- The caller's tenant only (nothing without a valid claim). Filters: days [since, until], one number, one
-- conversation (null: all). The zero uuid stands for "no number" / "no conversation".
create or replace function public.page_facts(
  since date, until date, number uuid default null, conversation uuid default null
)
returns table (number_id uuid, conversation_id uuid, day date, kind text, key text,
               sent bigint, received bigint, delivered bigint, read bigint, failed bigint, replies bigint)
language sql stable security definer set search_path to '' as $$
  select f.number_id, f.conversation_id, f.day, f.kind, f.key,
         f.sent, f.received, f.delivered, f.read, f.failed, f.replies
    from public.mv_page_facts f
   where f.tenant_id = (select public.current_tenant_id())
     and f.day between since and until
     and (number is null or f.number_id = number)
     and (conversation is null or f.conversation_id = conversation)
$$;
comment on function public.page_facts(date, date, uuid, uuid) is
  'mv_page_facts rows of the tenant in the request''s claims, filtered by days, number and conversation.';

-- When the page's figures were last refreshed (the caller's tenant has nothing to do with it: one time).
create table if not exists mirage_meta.metrics_refreshes (
  view_name text primary key,
  refreshed_at timestamptz not null,
  duration_ms integer not null
);
-- The views were just built (WITH DATA): that counts as a refresh.
insert into mirage_meta.metrics_refreshes (view_name, refreshed_at, duration_ms)
values ('mv_stats_messages', now(), 0), ('mv_number_stats', now(), 0), ('mv_page_facts', now(), 0)
on conflict do nothing;
create or replace function public.page_refreshed_at() returns timestamptz
language sql stable security definer set search_path to '' as $$
  select min(r.refreshed_at) from mirage_meta.metrics_refreshes r
$$;
comment on function public.page_refreshed_at() is
  'When the metrics views were last refreshed (the oldest of them); null before the first refresh.';

revoke all on function public.page_facts(date, date, uuid, uuid), public.page_refreshed_at() from public, anon;
grant execute on function public.page_facts(date, date, uuid, uuid), public.page_refreshed_at()
  to authenticated, service_role;

-- Refresh the three views without blocking readers; each view's duration, recorded for the page.
create or replace function public.refresh_metrics()
returns table (view_name text, duration_ms integer)
language plpgsql security definer set search_path to '' as $$
declare
  started timestamptz;
  v text;
begin
  foreach v in array array['mv_stats_messages', 'mv_number_stats', 'mv_page_facts'] loop
    started := clock_timestamp();
    execute format('refresh materialized view concurrently public.%I', v);
    view_name := v;
    duration_ms := (extract(epoch from clock_timestamp() - started) * 1000)::integer;
    insert into mirage_meta.metrics_refreshes as r (view_name, refreshed_at, duration_ms)
    values (v, started, duration_ms)
    on conflict on constraint metrics_refreshes_pkey
      do update set refreshed_at = excluded.refreshed_at, duration_ms = excluded.duration_ms;
    return next;
  end loop;
end
$$;
revoke all on function public.refresh_metrics() from public, anon, authenticated;
grant execute on function public.refresh_metrics() to service_role;
comment on function public.refresh_metrics() is
  'Refreshes mv_stats_messages, mv_number_stats and mv_page_facts concurrently; service_role and owner only.';
