-- The optional one-time confirmation of an opt-out (MIRAGE_OPTOUT_CONFIRMATION, off by default; ADR 0036):
-- set before the one message is sent, so it is sent at most once per opt-out.
alter table public.t_optouts add column confirmation_sent_at timestamptz;
comment on column public.t_optouts.confirmation_sent_at is
  'When the one confirmation message was sent (at most once; only with MIRAGE_OPTOUT_CONFIRMATION=true).';
