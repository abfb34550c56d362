-- Opt-out (issue 13, docs/adr/0036-optout.md): one rule for who may be contacted, a hash that outlives LGPD
-- erasure, and reviews for texts that only might be an opt-out.
--   * public.contact_hash(tenant, number): sha256 of the tenant and the E.164 number; the key an opt-out is
--     matched by, so `mirage contacts forget` can erase the number and the opt-out still holds;
--   * t_optouts.wa_hash (filled from wa_number on insert); wa_number may be erased (forgotten_at);
--   * t_optout_reviews: an ambiguous reply ("não", "para com isso kkk") pauses the contact until a person
--     confirms it as an opt-out or clears it (`mirage optouts review`);
--   * public.may_contact(tenant, number): false for an opt-out or a pending review. Every sender asks it
--     (mirage.db.optouts.may_contact, and the outbox claim in SQL).

create or replace function public.contact_hash(tenant uuid, wa_number text) returns text
language sql immutable parallel safe
as $$ select encode(pg_catalog.sha256(pg_catalog.convert_to(tenant::text || ':' || wa_number, 'UTF8')), 'hex') $$;
comment on function public.contact_hash(uuid, text) is
  'The key an opt-out is matched by: sha256 hex of tenant id and E.164 number (kept after the number is erased).';

alter table t_optouts
  add column wa_hash text,
  add column forgotten_at timestamptz;
update t_optouts set wa_hash = public.contact_hash(tenant_id, wa_number);
alter table t_optouts
  alter column wa_hash set not null,
  alter column wa_number drop not null,
  add constraint t_optouts_wa_hash_key unique (tenant_id, wa_hash),
  add constraint t_optouts_number_or_forgotten check (wa_number is not null or forgotten_at is not null),
  drop constraint t_optouts_source_check,
  add constraint t_optouts_source_check check (source in ('keyword', 'manual', 'import', 'review'));
comment on column t_optouts.wa_hash is 'public.contact_hash(tenant_id, wa_number); what opt-outs are matched by.';
comment on column t_optouts.forgotten_at is 'When `mirage contacts forget` erased wa_number and keyword (LGPD).';

-- Writers give the number; the hash follows from it (and cannot disagree with it).
create or replace function mirage_private.t_optouts_hash() returns trigger
language plpgsql set search_path to '' as $$
begin
  if new.wa_number is not null then
    new.wa_hash := public.contact_hash(new.tenant_id, new.wa_number);
  elsif new.wa_hash is null then
    raise exception 't_optouts needs wa_number (or wa_hash once forgotten)';
  end if;
  return new;
end
$$;
create trigger t_optouts_hash before insert or update of wa_number, wa_hash on t_optouts
  for each row execute function mirage_private.t_optouts_hash();

create table public.t_optout_reviews (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.t_tenants (id) on delete cascade,
  wa_hash text not null,          -- public.contact_hash(tenant_id, wa_number)
  wa_number text,                 -- null once forgotten
  contact_id uuid,
  message_id uuid,                -- the message that might be an opt-out
  phrase text,                    -- what matched (normalised); null once forgotten
  paused_targets jsonb not null default '{}',  -- target id -> status before the pause (restored on clear)
  status text not null default 'pending' check (status in ('pending', 'confirmed', 'cleared')),
  decided_by text,
  decided_at timestamptz,
  created_at timestamptz not null default now(),
  unique (tenant_id, id),
  foreign key (tenant_id, contact_id) references public.t_contacts (tenant_id, id) on delete set null (contact_id),
  check ((status = 'pending') = (decided_at is null))
);
create unique index t_optout_reviews_pending_idx on public.t_optout_reviews (tenant_id, wa_hash)
  where status = 'pending';
comment on table public.t_optout_reviews is
  'Replies that might be opt-outs; a pending one pauses the contact until a person confirms or clears it.';
select mirage_private.secure_table('public.t_optout_reviews', writes => 'service');

-- The one rule (item 5): a contact may be messaged unless it opted out or a review of it is pending.
create or replace function public.may_contact(tenant uuid, wa_number text) returns boolean
language sql stable parallel safe
as $$  -- $1/$2, not the names: inside the subqueries `wa_number` would be the column
  select not exists (select 1 from public.t_optouts o
                      where o.tenant_id = $1 and o.wa_hash = public.contact_hash($1, $2))
     and not exists (select 1 from public.t_optout_reviews r
                      where r.tenant_id = $1 and r.wa_hash = public.contact_hash($1, $2) and r.status = 'pending')
$$;
comment on function public.may_contact(uuid, text) is
  'False when the contact opted out or a review of a possible opt-out is pending (docs/outreach.md).';
revoke all on function public.may_contact(uuid, text) from public, anon;
grant execute on function public.may_contact(uuid, text) to authenticated, service_role;

-- Cancelling a contact's queued messages: outgoing rows by recipient.
create index t_messages_contact_queued_idx on public.t_messages (tenant_id, contact_id)
  where direction = 'out' and status = 'queued';
create index t_messages_to_jid_queued_idx on public.t_messages (tenant_id, to_jid)
  where direction = 'out' and status = 'queued';
