-- A per-tenant configuration version for the scheduler's cache of effective views (ADR 0045).
--
-- The 60-second tick builds each conversation's effective view (mirage/engine/view.py) from the rows below.
-- They change only when someone changes the configuration (`mirage apply`, the web, SQL by hand), so the cron
-- process keeps the views and rebuilds a tenant's only when its version moved. Every statement that writes
-- one of these tables gives the tenants it touched a fresh random version, whoever the writer is: a cache
-- keyed by it can never miss a change. Dynamic state (numbers' status, rounds, quotas) is not versioned: the
-- tick reads it every time.

alter table public.t_tenants add column config_version uuid not null default gen_random_uuid();
comment on column public.t_tenants.config_version is
  'Changes whenever a row the effective conversation views are built from changes (triggers; ADR 0045).';

create or replace function mirage_private.bump_config_version() returns trigger
language plpgsql security definer set search_path to '' as $$
begin
  if tg_op = 'DELETE' then
    update public.t_tenants t set config_version = gen_random_uuid()
     where t.id in (select o.tenant_id from old_rows o);
  else
    update public.t_tenants t set config_version = gen_random_uuid()
     where t.id in (select n.tenant_id from new_rows n);
  end if;
  return null;
end
$$;
comment on function mirage_private.bump_config_version() is
  'Statement trigger: a fresh t_tenants.config_version for every tenant whose configuration rows changed.';
revoke all on function mirage_private.bump_config_version() from public;

do $$
declare
  tbl text;
begin
  foreach tbl in array array['t_settings_tenant', 't_personas', 't_conversations', 't_settings_conversation',
                             't_conversation_schedule', 't_conversation_participants', 't_pairings', 't_topics'] loop
    execute format('create trigger %I after insert on public.%I referencing new table as new_rows '
                   'for each statement execute function mirage_private.bump_config_version()',
                   tbl || '_config_version_ins', tbl);
    execute format('create trigger %I after update on public.%I referencing new table as new_rows '
                   'for each statement execute function mirage_private.bump_config_version()',
                   tbl || '_config_version_upd', tbl);
    execute format('create trigger %I after delete on public.%I referencing old table as old_rows '
                   'for each statement execute function mirage_private.bump_config_version()',
                   tbl || '_config_version_del', tbl);
  end loop;
end
$$;
