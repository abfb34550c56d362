-- Local development seed: run by `supabase db reset` (Supabase CLI) after the migrations, and safe to
-- run by hand on the embedded Postgres. Deliberately small: tenants, numbers, conversations and members
-- come from tenants.d/ through `mirage apply` (the demo tenant included), never from here, so the
-- database never holds configuration that git does not.
--
-- What it does:
--   1. links Supabase Auth users you created locally (Studio > Authentication, confirmed email) to the
--      t_users rows `mirage apply` wrote for the same email, so their JWTs carry app.tenant_id;
--   2. fills the metrics views once, so the metrics page has something to show before pg_cron runs.

select mirage_private.link_auth_users();
select view_name, duration_ms from public.refresh_metrics();
