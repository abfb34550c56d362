-- Plain-Postgres shim for what Supabase provides (docs/adr/0001-tenancy-and-rls.md):
--   * roles anon, authenticated (nologin noinherit) and service_role (nologin noinherit bypassrls);
--   * schema auth with auth.jwt(), auth.uid(), auth.role(), auth.email(): the claims of the current
--     request, read from the transaction-local setting `request.jwt.claims` exactly as Supabase does;
--   * Supabase's default grants in schema public, so row level security is the only barrier.
-- On Supabase every object below already exists and is left alone: each one is created only when the
-- catalog does not have it. Roles are cluster-wide, so several databases migrating at once (parallel
-- test sessions) may race to create them; losing that race is fine.

do $shim$
declare
  r record;
begin
  for r in select * from (values
      ('anon', 'nologin noinherit'),
      ('authenticated', 'nologin noinherit'),
      ('service_role', 'nologin noinherit bypassrls')) as v(name, options)
  loop
    if not exists (select 1 from pg_catalog.pg_roles where rolname = r.name) then
      begin
        execute format('create role %I %s', r.name, r.options);
        -- a non-superuser owner must be able to `set local role` into what it created
        if not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
          execute format('grant %I to %I', r.name, current_user);
        end if;
      exception when duplicate_object or unique_violation then
        null;  -- another session created it first
      end;
    end if;
  end loop;
end
$shim$;

do $shim$
begin
  if to_regnamespace('auth') is null then
    create schema auth;
    grant usage on schema auth to anon, authenticated, service_role;
  end if;

  -- Supabase's definitions (supabase/auth 20240624145325_recreate_auth_functions): the legacy
  -- per-claim settings win, then the JSON `request.jwt.claims`; '' (what a committed SET LOCAL leaves
  -- behind) counts as unset, so no claims means NULL and every tenant predicate fails closed.
  if to_regprocedure('auth.uid()') is null then
    create function auth.uid() returns uuid language sql stable set search_path to '' as $f$
      select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
    $f$;
    comment on function auth.uid() is 'Mirage shim of Supabase auth.uid(): the sub claim.';
  end if;
  if to_regprocedure('auth.role()') is null then
    create function auth.role() returns text language sql stable set search_path to '' as $f$
      select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text
    $f$;
    comment on function auth.role() is 'Mirage shim of Supabase auth.role(): the role claim.';
  end if;
  if to_regprocedure('auth.email()') is null then
    create function auth.email() returns text language sql stable set search_path to '' as $f$
      select coalesce(nullif(current_setting('request.jwt.claim.email', true), ''),
                      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email'))::text
    $f$;
    comment on function auth.email() is 'Mirage shim of Supabase auth.email(): the email claim.';
  end if;
  if to_regprocedure('auth.jwt()') is null then
    create function auth.jwt() returns jsonb language sql stable set search_path to '' as $f$
      select coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                      nullif(current_setting('request.jwt.claims', true), ''))::jsonb
    $f$;
    comment on function auth.jwt() is 'Mirage shim of Supabase auth.jwt(): all claims of the request, or NULL.';
  end if;
end
$shim$;

-- Supabase's defaults (supabase/postgres 00000000000000-initial-schema.sql): the API roles get every
-- privilege on what the owner creates in public. Idempotent, and identical to what Supabase already has.
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
