-- Tokens per tenant per local day, for cost (docs/generation.md "Cost: tokens per day"; ADR 0042).
--
-- Every message the runtime writes carries in meta where its text came from (`text_source`: openai |
-- offline), the tokens the model used for it (`tokens`, retries included, 0 offline) and, when the model
-- failed or a guard refused its answer, `text_reasons`. This view sums them per tenant and local day.
--
-- A plain view with security_invoker: it runs with the reader's rights, so t_messages' row level security
-- applies as is (a member sees the days of their tenant, nothing else) and it is always current (no
-- refresh). The day is the one in which the text was written (created_at: when the tokens were spent), in
-- the tenant's zone, or UTC when this server does not know the zone: the rule of public.tenant_zones
-- (migration 20261207000600, which sorts after this one, so the rule is spelled out here).

create view public.text_usage with (security_invoker = true) as
select m.tenant_id,
       (m.created_at at time zone coalesce(z.name, 'UTC'))::date as day,
       count(*) as messages,
       count(*) filter (where m.meta->>'text_source' = 'openai') as openai_messages,
       count(*) filter (where m.meta->>'text_source' = 'offline') as offline_messages,
       count(*) filter (where m.meta->>'text_source' = 'offline' and m.meta ? 'text_reasons') as fallbacks,
       coalesce(sum(case when jsonb_typeof(m.meta->'tokens') = 'number' then (m.meta->>'tokens')::numeric end), 0)::bigint
         as tokens
  from public.t_messages m
  join public.t_tenants t on t.id = m.tenant_id
  left join pg_catalog.pg_timezone_names z on z.name = t.timezone
 where m.direction = 'out'
   and m.meta ? 'text_source'
 group by m.tenant_id, 2;
comment on view public.text_usage is
  'Per tenant and local day: messages written, by the model or offline, offline fallbacks, tokens used.';

revoke all on public.text_usage from public, anon;
grant select on public.text_usage to authenticated, service_role;
