-- Metrics: materialized views over t_messages, refreshed concurrently (docs/database.md "Metrics").
--
-- Materialized views cannot have row level security, so anon and authenticated may not read them;
-- tenants read them through public.stats_messages() and public.number_stats(), which return only the
-- rows of the tenant in the request's claims. The service reads them directly.
--
-- Conventions of both views:
--   * a message belongs to the bot number that sent it (out) or received it (in); messages whose
--     number was deleted (number id set null) drop out of the per-number figures;
--   * `sent` counts outgoing messages WhatsApp accepted (sent, delivered, read); queued, sending,
--     failed, unknown and cancelled ones are not sent;
--   * the time of a message is WhatsApp's timestamp, else when it was sent, else when it was stored;
--     days are local days in the tenant's timezone (UTC if Postgres does not know the zone).

-- Messages per local day per bot number, for the last 92 days.
create materialized view public.mv_stats_messages as
with zones as (
  select t.id as tenant_id, coalesce(z.name, 'UTC') as zone
    from public.t_tenants t
    left join pg_catalog.pg_timezone_names z on z.name = t.timezone
), msgs as (
  select m.tenant_id,
         case m.direction when 'out' then m.from_number_id else m.to_number_id end as number_id,
         m.direction,
         m.status,
         (coalesce(m.wa_ts, m.sent_at, m.created_at) at time zone zones.zone)::date as day
    from public.t_messages m
    join zones using (tenant_id)
   where m.created_at >= now() - interval '92 days'
)
select tenant_id,
       number_id,
       day,
       count(*) filter (where direction = 'out' and status in ('sent', 'delivered', 'read')) as sent,
       count(*) filter (where direction = 'in') as received,
       count(*) filter (where direction = 'out' and status in ('delivered', 'read')) as delivered,
       count(*) filter (where direction = 'out' and status = 'read') as read,
       count(*) filter (where direction = 'out' and status = 'failed') as failed
  from msgs
 where number_id is not null
 group by tenant_id, number_id, day
with data;
create unique index mv_stats_messages_key on public.mv_stats_messages (tenant_id, number_id, day);
comment on materialized view public.mv_stats_messages is
  'Messages per tenant-local day per bot number (92 days): sent, received, delivered, read, failed.';

-- Per bot number (every number, with zeros): sent / received today and over the last 7 local days
-- (today included), and reply latency over those 7 days. A reply is an outgoing message that directly
-- follows an incoming one in the thread of the same number and peer (contact, other number or JID);
-- its latency is the time between the two.
create materialized view public.mv_number_stats as
with zones as (
  select t.id as tenant_id, coalesce(z.name, 'UTC') as zone
    from public.t_tenants t
    left join pg_catalog.pg_timezone_names z on z.name = t.timezone
), msgs as (
  select m.tenant_id,
         case m.direction when 'out' then m.from_number_id else m.to_number_id end as number_id,
         case m.direction
           when 'out' then coalesce(m.contact_id::text, m.to_number_id::text, m.to_jid)
           else coalesce(m.contact_id::text, m.from_number_id::text, m.from_jid)
         end as peer,
         m.direction,
         coalesce(m.wa_ts, m.sent_at, m.created_at) as at,
         (coalesce(m.wa_ts, m.sent_at, m.created_at) at time zone zones.zone)::date as day,
         (now() at time zone zones.zone)::date as today
    from public.t_messages m
    join zones using (tenant_id)
   where m.created_at >= now() - interval '8 days'
     and (m.direction = 'in' or m.status in ('sent', 'delivered', 'read'))
), threads as (
  select msgs.*,
         lead(direction) over thread as next_direction,
         lead(at) over thread as next_at
    from msgs
  window thread as (partition by tenant_id, number_id, peer order by at, direction)
), per_number as (
  select tenant_id,
         number_id,
         count(*) filter (where direction = 'out' and day = today) as sent_today,
         count(*) filter (where direction = 'in' and day = today) as received_today,
         count(*) filter (where direction = 'out' and day > today - 7) as sent_7d,
         count(*) filter (where direction = 'in' and day > today - 7) as received_7d,
         count(*) filter (where direction = 'in' and next_direction = 'out' and peer is not null
                            and day > today - 7) as replies_7d,
         avg(extract(epoch from next_at - at))
           filter (where direction = 'in' and next_direction = 'out' and peer is not null
                     and day > today - 7) as reply_latency_avg_s,
         percentile_cont(0.5) within group (order by extract(epoch from next_at - at))
           filter (where direction = 'in' and next_direction = 'out' and peer is not null
                     and day > today - 7) as reply_latency_p50_s
    from threads
   where number_id is not null
   group by tenant_id, number_id
)
select n.tenant_id,
       n.id as number_id,
       coalesce(p.sent_today, 0) as sent_today,
       coalesce(p.received_today, 0) as received_today,
       coalesce(p.sent_7d, 0) as sent_7d,
       coalesce(p.received_7d, 0) as received_7d,
       coalesce(p.replies_7d, 0) as replies_7d,
       round(p.reply_latency_avg_s::numeric, 1) as reply_latency_avg_s,
       round(p.reply_latency_p50_s::numeric, 1) as reply_latency_p50_s,
       now() as refreshed_at
  from public.t_numbers n
  left join per_number p on p.tenant_id = n.tenant_id and p.number_id = n.id
with data;
create unique index mv_number_stats_key on public.mv_number_stats (tenant_id, number_id);
comment on materialized view public.mv_number_stats is
  'Per bot number: sent/received today and over 7 local days, reply latency (s) over 7 days.';

-- No row level security on materialized views: keep the API roles out entirely.
revoke all on public.mv_stats_messages, public.mv_number_stats from public, anon, authenticated;
grant select on public.mv_stats_messages, public.mv_number_stats to service_role;

-- Tenant access: the caller's tenant only (security definer reads the view; the claim filters it).
create or replace function public.stats_messages(since date default null)
returns table (number_id uuid, day date, sent bigint, received bigint, delivered bigint, read bigint, failed bigint)
language sql stable security definer set search_path to '' as $$
  select s.number_id, s.day, s.sent, s.received, s.delivered, s.read, s.failed
    from public.mv_stats_messages s
   where s.tenant_id = (select public.current_tenant_id())
     and (since is null or s.day >= since)
   order by s.day, s.number_id
$$;
comment on function public.stats_messages(date) is
  'mv_stats_messages rows of the tenant in the request''s claims (none without a valid claim).';

create or replace function public.number_stats()
returns table (
  number_id uuid, sent_today bigint, received_today bigint, sent_7d bigint, received_7d bigint,
  replies_7d bigint, reply_latency_avg_s numeric, reply_latency_p50_s numeric, refreshed_at timestamptz
)
language sql stable security definer set search_path to '' as $$
  select s.number_id, s.sent_today, s.received_today, s.sent_7d, s.received_7d, s.replies_7d,
         s.reply_latency_avg_s, s.reply_latency_p50_s, s.refreshed_at
    from public.mv_number_stats s
   where s.tenant_id = (select public.current_tenant_id())
   order by s.number_id
$$;
comment on function public.number_stats() is
  'mv_number_stats rows of the tenant in the request''s claims (none without a valid claim).';

revoke all on function public.stats_messages(date), public.number_stats() from public, anon;
grant execute on function public.stats_messages(date), public.number_stats() to authenticated, service_role;

-- Refresh both views without blocking readers; returns how long each took. Scheduled with pg_cron on
-- Supabase (docs/database.md) or run by `mirage db refresh-metrics`; the service and the owner only.
create or replace function public.refresh_metrics()
returns table (view_name text, duration_ms integer)
language plpgsql security definer set search_path to '' as $$
declare
  started timestamptz;
begin
  started := clock_timestamp();
  refresh materialized view concurrently public.mv_stats_messages;
  view_name := 'mv_stats_messages';
  duration_ms := (extract(epoch from clock_timestamp() - started) * 1000)::integer;
  return next;

  started := clock_timestamp();
  refresh materialized view concurrently public.mv_number_stats;
  view_name := 'mv_number_stats';
  duration_ms := (extract(epoch from clock_timestamp() - started) * 1000)::integer;
  return next;
end
$$;
revoke all on function public.refresh_metrics() from public, anon, authenticated;
grant execute on function public.refresh_metrics() to service_role;
comment on function public.refresh_metrics() is
  'Refreshes mv_stats_messages and mv_number_stats concurrently; service_role and owner only.';
