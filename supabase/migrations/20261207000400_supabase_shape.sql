-- A Supabase-shaped database (issue 10 item 14, docs/credentials/supabase.md):
--   * the API roles INHERIT, as current Supabase creates them (the shim made them NOINHERIT); on Supabase
--     they already do and are left alone;
--   * link_auth_users() links a t_users row to ONE auth.users row deterministically when several share the
--     e-mail (SSO users may): confirmed only, a non-SSO one first, then the earliest confirmed, then the id;
--   * supabase_auth_admin gets usage on the hook's schema explicitly, as Supabase's own hook example does.

do $roles$
declare
  r text;
begin
  foreach r in array array['anon', 'authenticated', 'service_role'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = r and not rolinherit) then
      execute format('alter role %I inherit', r);
    end if;
  end loop;
end
$roles$;

create or replace function mirage_private.link_auth_users() returns integer
language plpgsql security definer set search_path to '' as $$
declare
  linked integer := 0;
  sso text := '';
  live text := '';
begin
  if to_regclass('auth.users') is null then
    return 0;
  end if;
  -- Supabase's auth.users has both columns; a stand-in (tests, older GoTrue) may lack them
  if exists (select 1 from pg_catalog.pg_attribute
              where attrelid = 'auth.users'::regclass and attname = 'is_sso_user' and not attisdropped) then
    sso := 'coalesce(is_sso_user, false), ';
  end if;
  if exists (select 1 from pg_catalog.pg_attribute
              where attrelid = 'auth.users'::regclass and attname = 'deleted_at' and not attisdropped) then
    live := 'and deleted_at is null';
  end if;
  execute format($q$
    update public.t_users u
       set auth_user_id = a.id, updated_at = now()
      from (select distinct on (lower(email)) id, lower(email) as email
              from auth.users
             where email_confirmed_at is not null and email is not null %s
             order by lower(email), %s email_confirmed_at, id) a
     where u.auth_user_id is null
       and a.email = u.email
  $q$, live, sso);
  get diagnostics linked = row_count;
  return linked;
end
$$;
revoke all on function mirage_private.link_auth_users() from public;
grant execute on function mirage_private.link_auth_users() to service_role;
comment on function mirage_private.link_auth_users() is
  'Sets t_users.auth_user_id from the one confirmed auth.users row per email (non-SSO first); service only.';

do $hook$
begin
  if exists (select 1 from pg_catalog.pg_roles where rolname = 'supabase_auth_admin') then
    grant usage on schema public to supabase_auth_admin;
  end if;
end
$hook$;
