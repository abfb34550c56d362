-- TRUNCATE of a configuration table renews every tenant's configuration version too (ADR 0045): row and
-- statement triggers for DELETE do not fire on TRUNCATE, and a truncated table names no tenant.

create or replace function mirage_private.bump_every_config_version() returns trigger
language plpgsql security definer set search_path to '' as $$
begin
  update public.t_tenants set config_version = gen_random_uuid();
  return null;
end
$$;
comment on function mirage_private.bump_every_config_version() is
  'Statement trigger on TRUNCATE: a fresh t_tenants.config_version for every tenant.';
revoke all on function mirage_private.bump_every_config_version() from public;

do $$
declare
  tbl text;
begin
  foreach tbl in array array['t_settings_tenant', 't_personas', 't_conversations', 't_settings_conversation',
                             't_conversation_schedule', 't_conversation_participants', 't_pairings', 't_topics'] loop
    execute format('create trigger %I after truncate on public.%I '
                   'for each statement execute function mirage_private.bump_every_config_version()',
                   tbl || '_config_version_trunc', tbl);
  end loop;
end
$$;
