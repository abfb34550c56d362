-- The conversation runtime (issue 11, ADRs 0026-0028): round identity, turn bookkeeping, number health,
-- and the indexes the tick, the outbox claim and the sweeper use.

-- Rounds: a deterministic identity (conversation, tenant-local window date, daypart, sequence) so two ticks
-- at once, or a re-run tick, insert one round; the two numbers (a = starter) and the reason a round aborted.
alter table t_rounds
  add column seq integer,
  add column number_a_id uuid,
  add column number_b_id uuid,
  add column topic_id uuid,
  add column abort_reason text,
  add column meta jsonb not null default '{}',
  add foreign key (tenant_id, number_a_id) references t_numbers (tenant_id, id) on delete set null (number_a_id),
  add foreign key (tenant_id, number_b_id) references t_numbers (tenant_id, id) on delete set null (number_b_id);
comment on column t_rounds.exchanges_done is 'Messages of the script that reached the other bot (the turn passed).';
comment on column t_rounds.turn_number_id is 'The number whose message is due; a bot answers a bot only on its turn.';

create unique index t_rounds_identity_idx on t_rounds (conversation_id, window_date, daypart, seq)
  where conversation_id is not null and seq is not null;
create index t_rounds_numbers_live_idx on t_rounds (number_a_id, number_b_id) where status in ('planned', 'active');
create index t_rounds_conversation_recent_idx on t_rounds (conversation_id, created_at desc);

-- Number health: paused numbers (a ban-like disconnect, repeated send failures) stay out of rounds until an
-- operator resumes them (`mirage numbers resume`), even when their connection is `open` again.
alter table t_numbers
  add column paused_at timestamptz,
  add column paused_reason text,
  add column send_failures integer not null default 0;

-- Outbox: the sweeper's scan of rows left queued or sending, and quota rebuilds by number and time.
create index t_messages_outbox_idx on t_messages (status, updated_at)
  where direction = 'out' and status in ('queued', 'sending', 'unknown');
create index t_messages_quota_idx on t_messages (from_number_id, sent_at)
  where direction = 'out' and status in ('sending', 'sent', 'unknown', 'delivered', 'read');
