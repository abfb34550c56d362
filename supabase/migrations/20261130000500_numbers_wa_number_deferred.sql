-- t_numbers.wa_number stays unique per tenant, but the check may wait for COMMIT: one `mirage apply` can then
-- swap two numbers' WhatsApp numbers, or hand a deleted number's WhatsApp number to another, whatever order
-- its statements run in (apply runs `set constraints t_numbers_tenant_id_wa_number_key deferred`).
-- Every other writer keeps the immediate check (initially immediate). No ON CONFLICT names this constraint:
-- a deferrable one cannot be an arbiter.
alter table public.t_numbers drop constraint if exists t_numbers_tenant_id_wa_number_key;
alter table public.t_numbers add constraint t_numbers_tenant_id_wa_number_key
  unique (tenant_id, wa_number) deferrable initially immediate;
