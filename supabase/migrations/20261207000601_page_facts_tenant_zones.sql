-- mv_page_facts (20261207000300) rebuilt on public.tenant_zones (20261207000600), like the other metrics
-- views: one copy of the rule for a tenant's day (its zone, else UTC; docs/adr/0021-pure-core-seams-and-
-- tenant-day.md). Same columns, same figures; page_facts() and refresh_metrics() name it and need no change.

drop materialized view public.mv_page_facts;

create materialized view public.mv_page_facts as
with msgs as (
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
    join public.tenant_zones zones using (tenant_id)
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
