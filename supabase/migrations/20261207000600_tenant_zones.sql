-- One rule for a tenant's day (docs/adr/0021-pure-core-seams-and-tenant-day.md): the calendar day in the
-- tenant's time zone, or in UTC when this server does not know the zone. `mirage validate` refuses unknown
-- zones, so the fallback only covers rows edited by hand and tzdata that differs between Python and
-- Postgres; Python applies the same rule (mirage.engine.calendar.tenant_zone), so the daily quotas and the
-- daily metrics count the same day for the same message.
--
-- The rule lives in one view, public.tenant_zones; the metrics views, which each carried a copy of it as a
-- CTE, are rebuilt on it (same columns, same figures). pg_timezone_names is read once per query, joined,
-- as before (a lookup per tenant would scan the zone files each time).

create view public.tenant_zones with (security_invoker = true) as
select t.id as tenant_id, coalesce(z.name, 'UTC') as zone
  from public.t_tenants t
  left join pg_catalog.pg_timezone_names z on z.name = t.timezone;
comment on view public.tenant_zones is
  'The time zone each tenant''s days are counted in: its own, or UTC when Postgres does not know it.';
revoke all on public.tenant_zones from public, anon, authenticated;
grant select on public.tenant_zones to service_role;

-- The metrics views, rebuilt on public.tenant_zones (their readers and refresh_metrics() name them, and
-- need no change).
drop materialized view public.mv_number_stats;
drop materialized view public.mv_stats_messages;

-- Messages per local day per bot number, for the last 92 days.
create materialized view public.mv_stats_messages as
with msgs as (
  select m.tenant_id,
         case m.direction when 'out' then m.from_number_id else m.to_number_id end as number_id,
         m.direction,
         m.status,
         (coalesce(m.wa_ts, m.sent_at, m.created_at) at time zone zones.zone)::date as day
    from public.t_messages m
    join public.tenant_zones zones using (tenant_id)
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
with msgs as (
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
    join public.tenant_zones zones using (tenant_id)
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
