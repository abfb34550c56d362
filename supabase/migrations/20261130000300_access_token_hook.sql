-- Supabase Custom Access Token Hook: puts the tenant into every JWT Supabase Auth issues
-- (docs/database.md "Access token hook"; docs/adr/0001-tenancy-and-rls.md).
--
-- Claims added: `app.tenant_id` and `app.role` (admin | member | viewer), both from t_users, matched by
-- t_users.auth_user_id = the signing-in user's id. Nothing comes from user_metadata (users edit it
-- themselves); claims the caller already carries under those names are dropped first. The link
-- t_users.auth_user_id is written only server-side, by mirage_private.link_auth_users() below.
--
-- Enable on Supabase: Dashboard > Authentication > Hooks > Custom Access Token >
-- postgres function public.custom_access_token_hook (or config.toml [auth.hook.custom_access_token]).
-- Re-running this file is harmless (tests do, to exercise the supabase_auth_admin branch).

create or replace function public.custom_access_token_hook(event jsonb) returns jsonb
language plpgsql stable set search_path to '' as $$
declare
  claims jsonb := coalesce(event -> 'claims', '{}'::jsonb) - 'app.tenant_id' - 'app.role';
  -- app_metadata is server-owned (only the service role writes it): it may pick one of several tenants
  preferred text := event -> 'claims' -> 'app_metadata' ->> 'tenant_id';
  member record;
begin
  select u.tenant_id, u.role
    into member
    from public.t_users u
    join public.t_tenants t on t.id = u.tenant_id
   where u.auth_user_id = (event ->> 'user_id')::uuid
     and t.archived_at is null
   order by (u.tenant_id::text = preferred) desc nulls last, u.created_at, u.id
   limit 1;
  if found then
    claims := claims || jsonb_build_object('app.tenant_id', member.tenant_id::text, 'app.role', member.role);
  end if;
  return jsonb_build_object('claims', claims);
end
$$;
comment on function public.custom_access_token_hook(jsonb) is
  'Supabase access token hook: adds app.tenant_id and app.role from t_users (never from user metadata).';

-- Supabase's grants pattern: only Supabase Auth (supabase_auth_admin) runs the hook.
revoke execute on function public.custom_access_token_hook(jsonb) from public, anon, authenticated, service_role;

do $hook$
begin
  if exists (select 1 from pg_catalog.pg_roles where rolname = 'supabase_auth_admin') then
    grant execute on function public.custom_access_token_hook(jsonb) to supabase_auth_admin;
    grant select on public.t_users, public.t_tenants to supabase_auth_admin;
    -- both tables force RLS: the hook (run as supabase_auth_admin, before any claim exists) needs a policy
    drop policy if exists auth_admin_reads_memberships on public.t_users;
    create policy auth_admin_reads_memberships on public.t_users for select to supabase_auth_admin using (true);
    drop policy if exists auth_admin_reads_tenants on public.t_tenants;
    create policy auth_admin_reads_tenants on public.t_tenants for select to supabase_auth_admin using (true);
  end if;
end
$hook$;

-- Link members to their Supabase Auth users: a t_users row (written by `mirage apply` from the
-- tenant's `members:`/`viewers:`) gets auth_user_id once an auth user with the same email has
-- confirmed it. Run by the service after apply and on a schedule; returns how many rows it linked.
-- On plain Postgres (no auth.users) it links nothing.
create or replace function mirage_private.link_auth_users() returns integer
language plpgsql security definer set search_path to '' as $$
declare
  linked integer := 0;
begin
  if to_regclass('auth.users') is null then
    return 0;
  end if;
  execute $q$
    update public.t_users u
       set auth_user_id = a.id, updated_at = now()
      from auth.users a
     where u.auth_user_id is null
       and a.email_confirmed_at is not null
       and lower(a.email) = u.email
  $q$;
  get diagnostics linked = row_count;
  return linked;
end
$$;
revoke all on function mirage_private.link_auth_users() from public;
grant execute on function mirage_private.link_auth_users() to service_role;
comment on function mirage_private.link_auth_users() is
  'Sets t_users.auth_user_id from auth.users rows with the same, confirmed email; service only.';
