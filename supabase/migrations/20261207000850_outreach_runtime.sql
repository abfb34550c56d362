-- The outreach runtime (issue 13, ADR 0037): what a target owes next, why it ended, its one WhatsApp check and its
-- first contact (the new-contacts cap counts these), and how many messages in a row the person left unanswered.

alter table t_outreach_targets
  add column reason text,                 -- why the target is done / paused / optout
  add column next_kind text check (next_kind in ('opening', 'reply', 'goodbye')),  -- the message the bot owes
  add column checked_at timestamptz,      -- the one chat/whatsappNumbers check, just before the first contact
  add column first_contact_at timestamptz,
  add column first_contact_day date,      -- tenant-local day of the opening (new contacts per number per day)
  add column unanswered integer not null default 0 check (unanswered between 0 and 2),
  add column replies integer not null default 0 check (replies >= 0);
comment on column t_outreach_targets.rounds_done is
  'Exchanges the bot sent to this contact (opening included, goodbye not): max_rounds_per_contact caps it.';
comment on column t_outreach_targets.unanswered is
  'Bot messages since the person last wrote; never above 2 (a human never gets a third message in a row).';

-- One contact, one live outreach at a time in a tenant (a contact in two policies is contacted by one).
create unique index t_outreach_targets_one_live_idx on t_outreach_targets (tenant_id, contact_id)
  where status = 'in_progress';
create index t_outreach_targets_first_contact_idx on t_outreach_targets (policy_id, first_contact_day)
  where first_contact_day is not null;
create index t_outreach_targets_checked_idx on t_outreach_targets (policy_id, checked_at)
  where checked_at is not null;

-- One live round per target: the vehicle its messages are claimed through.
create unique index t_rounds_target_live_idx on t_rounds (target_id) where target_id is not null
  and status in ('planned', 'active');

-- Replies: a person's messages to a bot number, not yet attached to an outreach round.
create index t_messages_inbound_contact_idx on t_messages (to_number_id, contact_id)
  where direction = 'in' and round_id is null and contact_id is not null;
