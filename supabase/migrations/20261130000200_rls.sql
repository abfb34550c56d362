-- Row level security on every table in public, enabled and forced (docs/adr/0001-tenancy-and-rls.md).
--
-- The model, in one place (mirage_private.secure_table below; later migrations call it for new tables):
--   * the tenant comes from the JWT claim `app.tenant_id`, through public.current_tenant_id(), called as
--     `(select public.current_tenant_id())` so it runs once per statement; no claim, or a claim that
--     is not a uuid, is NULL and matches no row (fails closed);
--   * members (`authenticated` with the claim) read their tenant's rows;
--   * writes need the claim `app.role` = admin, `aal` >= aal2, and a live admin membership in t_users
--     (a stale token of a demoted or removed admin writes nothing);
--   * sensitive tables need aal2 and a live membership even to read (a RESTRICTIVE policy);
--   * history, audit, credentials and runtime-only tables are written by the service alone;
--   * `anon` has no policy at all: it reads and writes nothing; `service_role` bypasses RLS.
-- `anon` and `authenticated` keep Supabase's table privileges (RLS is the barrier), except TRUNCATE,
-- REFERENCES and TRIGGER, which row level security does not govern.

create schema if not exists mirage_private;
comment on schema mirage_private is
  'Mirage helpers for policies and checks; not exposed through the Supabase Data API.';
revoke all on schema mirage_private from public;
grant usage on schema mirage_private to authenticated, service_role;

-- The tenant of the request: the `app.tenant_id` claim when it is a well-formed uuid, else NULL.
create or replace function public.current_tenant_id() returns uuid
language sql stable set search_path to '' as $$
  select case when claim ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
              then claim::uuid end
    from (select auth.jwt() ->> 'app.tenant_id') as c(claim)
$$;
comment on function public.current_tenant_id() is
  'Tenant of the request from the JWT claim app.tenant_id; NULL when absent or malformed (fails closed).';

-- The user of the request: the `sub` claim when it is a well-formed uuid (auth.uid() raises otherwise).
create or replace function mirage_private.current_user_id() returns uuid
language sql stable set search_path to '' as $$
  select case when claim ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
              then claim::uuid end
    from (select auth.jwt() ->> 'sub') as c(claim)
$$;

-- The live role (admin | member | viewer) of the request's user in the request's tenant, or NULL.
-- Security definer: it reads t_users past its own policies (the owner bypasses RLS: superuser on
-- the embedded server, BYPASSRLS `postgres` on Supabase).
create or replace function mirage_private.member_role() returns text
language sql stable security definer set search_path to '' as $$
  select u.role
    from public.t_users u
   where u.tenant_id = public.current_tenant_id()
     and u.auth_user_id = mirage_private.current_user_id()
$$;

create or replace function mirage_private.has_aal2() returns boolean
language sql stable set search_path to '' as $$
  select coalesce(auth.jwt() ->> 'aal' in ('aal2', 'aal3'), false)
$$;

-- May the request write its tenant's rows? Admin by claim and by live membership, with MFA (aal2).
create or replace function mirage_private.can_write() returns boolean
language sql stable set search_path to '' as $$
  select mirage_private.has_aal2()
     and coalesce(auth.jwt() ->> 'app.role' = 'admin', false)
     and coalesce(mirage_private.member_role() = 'admin', false)
$$;

-- May the request read sensitive rows? MFA (aal2) and a live membership of the claimed tenant.
create or replace function mirage_private.can_read_sensitive() returns boolean
language sql stable set search_path to '' as $$
  select mirage_private.has_aal2() and mirage_private.member_role() is not null
$$;

revoke all on function mirage_private.current_user_id(), mirage_private.member_role(),
  mirage_private.has_aal2(), mirage_private.can_write(), mirage_private.can_read_sensitive() from public;
grant execute on function mirage_private.current_user_id(), mirage_private.member_role(),
  mirage_private.has_aal2(), mirage_private.can_write(), mirage_private.can_read_sensitive()
  to authenticated, service_role;

-- One live membership per (tenant, auth user): member_role() must be unambiguous.
create unique index if not exists t_users_tenant_auth_user_idx on public.t_users (tenant_id, auth_user_id)
  where auth_user_id is not null;

-- Secure one table: RLS enabled and forced, Mirage's policies, Supabase-like privileges.
--   tenant_column: the column holding the tenant (`id` for t_tenants);
--   writes: 'admin' (admins with aal2 insert/update/delete), 'insert' (admins may only add rows),
--           'service' (only the service writes: no write privilege for anon/authenticated);
--   sensitive: aal2 and a live membership are needed even to read.
create or replace function mirage_private.secure_table(
  tbl regclass, tenant_column name default 'tenant_id', writes text default 'admin', sensitive boolean default false
) returns void language plpgsql set search_path to '' as $$
declare
  mine constant text := format('%I = (select public.current_tenant_id())', tenant_column);
  admin constant text := mine || ' and (select mirage_private.can_write())';
  p record;
begin
  if writes not in ('admin', 'insert', 'service') then
    raise exception 'secure_table(%): writes must be admin, insert or service, not %', tbl, writes;
  end if;
  if not exists (select 1 from pg_catalog.pg_attribute
                  where attrelid = tbl and attname = tenant_column and not attisdropped) then
    raise exception 'secure_table(%): no column % to scope rows by tenant', tbl, tenant_column;
  end if;

  execute format('alter table %s enable row level security', tbl);
  execute format('alter table %s force row level security', tbl);
  for p in select polname from pg_catalog.pg_policy where polrelid = tbl loop
    execute format('drop policy %I on %s', p.polname, tbl);
  end loop;

  execute format('grant select, insert, update, delete on %s to anon, authenticated, service_role', tbl);
  execute format('revoke truncate, references, trigger on %s from anon, authenticated', tbl);
  if writes = 'service' then
    execute format('revoke insert, update, delete on %s from anon, authenticated', tbl);
  elsif writes = 'insert' then
    execute format('revoke update, delete on %s from anon, authenticated', tbl);
  end if;

  execute format('create policy tenant_read on %s for select to authenticated using (%s)', tbl, mine);
  if writes in ('admin', 'insert') then
    execute format('create policy tenant_admin_insert on %s for insert to authenticated with check (%s)',
                   tbl, admin);
  end if;
  if writes = 'admin' then
    execute format('create policy tenant_admin_update on %s for update to authenticated using (%s) with check (%s)',
                   tbl, admin, admin);
    execute format('create policy tenant_admin_delete on %s for delete to authenticated using (%s)', tbl, admin);
  end if;
  if sensitive then
    execute format('create policy sensitive_needs_aal2 on %s as restrictive for all to authenticated '
                   'using ((select mirage_private.can_read_sensitive())) '
                   'with check ((select mirage_private.can_read_sensitive()))', tbl);
  end if;
end
$$;
revoke all on function mirage_private.secure_table(regclass, name, text, boolean) from public;

-- Every table in public today. A table that is neither listed nor has tenant_id fails this migration.
do $rls$
declare
  t record;
  -- only the service writes: history and audit (never rewritten), credentials, runtime state, and
  -- membership (t_users.auth_user_id decides who gets which tenant: never user-writable)
  service_only constant text[] := array[
    't_tenants', 't_users', 't_tenant_secrets', 't_sessions', 't_rounds', 't_messages', 't_webhook_events',
    't_applies'];
  insert_only constant text[] := array['t_optouts'];  -- an opt-out is for good: added, never undone
  -- credentials, and raw webhook payloads (message bodies, phone numbers, push names)
  sensitive constant text[] := array['t_tenant_secrets', 't_sessions', 't_webhook_events'];
begin
  for t in select c.oid::regclass as tbl, c.relname
             from pg_catalog.pg_class c
            where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
            order by c.relname loop
    perform mirage_private.secure_table(
      t.tbl,
      case when t.relname = 't_tenants' then 'id' else 'tenant_id' end,
      case when t.relname = any (service_only) then 'service'
           when t.relname = any (insert_only) then 'insert'
           else 'admin' end,
      t.relname = any (sensitive));
  end loop;
end
$rls$;

-- The catalog check behind tests/db/test_rls_catalog.py (and anyone auditing a database): every way a
-- relation in public could be read or emptied past row level security (and SECURITY DEFINER functions
-- open to anon, which run past it). No rows means no gaps.
create or replace function mirage_private.rls_gaps()
returns table (relation text, problem text)
language sql stable set search_path to '' as $$
  select c.relname::text, 'row level security is not enabled'
    from pg_catalog.pg_class c
   where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p') and not c.relrowsecurity
  union all
  select c.relname::text, 'row level security is not forced (the owner would bypass it)'
    from pg_catalog.pg_class c
   where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p') and not c.relforcerowsecurity
  union all
  select c.relname::text, format('%s may TRUNCATE it, which row level security does not govern', r.rolname)
    from pg_catalog.pg_class c
   cross join (values ('anon'), ('authenticated')) as r(rolname)
   where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
     and pg_catalog.has_table_privilege(r.rolname, c.oid, 'TRUNCATE')
  union all
  select c.relname::text, format('%s may read this materialized view, which cannot have row level security',
                                 r.rolname)
    from pg_catalog.pg_class c
   cross join (values ('anon'), ('authenticated')) as r(rolname)
   where c.relnamespace = 'public'::regnamespace and c.relkind = 'm'
     and pg_catalog.has_table_privilege(r.rolname, c.oid, 'SELECT')
  union all
  select c.relname::text, format('%s may read this view, which runs with its owner''s rights '
                                 '(set security_invoker = true)', r.rolname)
    from pg_catalog.pg_class c
   cross join (values ('anon'), ('authenticated')) as r(rolname)
   where c.relnamespace = 'public'::regnamespace and c.relkind = 'v'
     and pg_catalog.has_table_privilege(r.rolname, c.oid, 'SELECT')
     and not exists (select 1 from pg_catalog.pg_options_to_table(c.reloptions) o
                      where o.option_name = 'security_invoker' and o.option_value in ('true', 'on', 'yes', '1'))
  union all
  select format('%s(%s)', f.proname, pg_catalog.pg_get_function_identity_arguments(f.oid)), 'anon may execute this SECURITY DEFINER function, which runs past RLS'
    from pg_catalog.pg_proc f
   where f.pronamespace = 'public'::regnamespace and f.prosecdef
     and pg_catalog.has_function_privilege('anon', f.oid, 'EXECUTE')
  union all
  select p.tablename::text, format('policy %s reads user_metadata, which users can edit themselves', p.policyname)
    from pg_catalog.pg_policies p
   where p.schemaname = 'public'
     and (coalesce(p.qual, '') || coalesce(p.with_check, '')) like '%user_metadata%'
  order by 1, 2
$$;
revoke all on function mirage_private.rls_gaps() from public;
comment on function mirage_private.rls_gaps() is
  'Relations in public readable or writable past row level security; must return no rows.';
