-- A pairing's place in its conversation's `pairings:` list (docs/adr/0060-pairing-order.md). round_robin takes
-- the pairs in this order; before this column it read them by (created_at, id), and every pairing of one apply
-- shares created_at while ids are random UUIDs, so the order was a coin toss per database.
-- `mirage apply` writes it from the YAML list index. Existing rows are numbered here in the order the runtime
-- read them until now, so upgrading changes no running rotation by itself; the next plan shows, as a change of
-- `position`, every pairing whose place differs from the YAML list, and applying it makes rotation follow the YAML.
-- A row written without it (by hand) stays null and comes after the numbered ones.

alter table public.t_pairings add column position integer check (position >= 0);
comment on column public.t_pairings.position is
  'Index of the pairing in its conversation''s YAML `pairings:` list (0 first); round_robin rotates in this order.';

update public.t_pairings p
   set position = o.n
  from (select id, row_number() over (partition by conversation_id order by created_at, id) - 1 as n
          from public.t_pairings) o
 where o.id = p.id;
