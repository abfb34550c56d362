-- Opt-outs from a WhatsApp LID (docs/risks.md §11, docs/adr/0055-lid-optouts.md): a person whose message
-- carries only `NNN@lid` (no phone in remoteJidAlt) can still opt out. The opt-out is recorded against the LID
-- (t_optouts.wa_number = 'NNN@lid', hashed like a number) and holds for the contact as soon as Mirage learns
-- that LID belongs to it (t_contacts.lid, set by ingest): may_contact also asks by the contact's LID.

create or replace function public.may_contact(tenant uuid, wa_number text) returns boolean
language sql stable parallel safe
as $$  -- $1/$2, not the names: inside the subqueries `wa_number` would be the column
  with keys as (
    select public.contact_hash($1, $2) as h
    union all
    select public.contact_hash($1, c.lid) from public.t_contacts c
     where c.tenant_id = $1 and c.wa_number = $2 and c.lid is not null
  )
  select not exists (select 1 from public.t_optouts o join keys k on o.wa_hash = k.h where o.tenant_id = $1)
     and not exists (select 1 from public.t_optout_reviews r join keys k on r.wa_hash = k.h
                      where r.tenant_id = $1 and r.status = 'pending')
$$;
comment on function public.may_contact(uuid, text) is
  'False when the contact (by E.164 number, or by its WhatsApp LID once known) opted out or a review of a '
  'possible opt-out is pending (docs/outreach.md).';
revoke all on function public.may_contact(uuid, text) from public, anon;
