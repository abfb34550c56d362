-- Mirage schema: every table and enum of the user's design (seed §4) plus what the runtime needs.
-- Conventions (docs/adr/0001-tenancy-and-rls.md, docs/adr/0011-data-model.md):
--   * every tenant-scoped table has tenant_id and RLS (next migration); children reference parents
--     with composite (tenant_id, id) foreign keys so a row can never point into another tenant;
--   * configuration rows carry a natural `key` unique per tenant (what the YAML calls them) and
--     `applied_hash`, the hash of the desired fields at the last apply (drift detection);
--   * history (t_messages, t_webhook_events, t_applies) is never deleted with configuration: its
--     references to configuration are ON DELETE SET NULL and tenants are archived, not deleted.

create type convo_mode as enum ('pair', 'round_robin', 'random');
create type msg_direction as enum ('in', 'out');
create type dow as enum ('sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat');
create type participant_kind as enum ('bot', 'human');
create type target_status as enum ('pending', 'in_progress', 'paused', 'done', 'optout');
create type msg_status as enum (
  'queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'unknown', 'cancelled', 'received'
);
create type number_status as enum (
  'pending',       -- declared, no Evolution instance yet
  'provisioning',  -- provision job running
  'qr',            -- instance exists, waiting for a QR scan
  'connecting',
  'open',          -- connected: may send
  'close',         -- disconnected (401/403: logged out or banned)
  'refused',       -- QR limit reached; `mirage connect` again
  'logged_out',
  'removed',       -- instance deleted in Evolution
  'error'
);
create type round_status as enum ('planned', 'active', 'done', 'aborted');

-- Tenancy ---------------------------------------------------------------------------------------

create table t_tenants (
  id uuid primary key default gen_random_uuid(),
  slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  name text not null,
  plan text not null default 'free',
  timezone text not null default 'America/Sao_Paulo',
  locale text not null default 'pt-BR',
  prune boolean not null default false,
  applied_hash text,
  archived_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table t_tenants is 'One customer; archived (never deleted) so its history stays.';

create table t_users (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references t_tenants (id) on delete cascade,
  email text not null check (email = lower(email) and email like '%_@_%'),
  role text not null default 'viewer' check (role in ('admin', 'member', 'viewer')),
  mfa_enabled boolean not null default false,
  auth_user_id uuid,  -- Supabase auth.users.id once the person signs in (linked by the access token hook)
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, email),
  unique (tenant_id, id)
);
create index t_users_auth_user_idx on t_users (auth_user_id) where auth_user_id is not null;

create table t_settings_tenant (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null unique references t_tenants (id) on delete cascade,
  min_delay_ms integer not null default 4000 check (min_delay_ms >= 0),
  max_delay_ms integer not null default 25000,
  hourly_burst_limit integer not null default 30 check (hourly_burst_limit > 0),
  daily_limit integer not null default 200 check (daily_limit > 0),
  quiet_hours jsonb not null default '{"start": "22:00", "end": "07:00"}',
  humanize boolean not null default true,
  allow_bot_to_bot boolean not null default true,
  evolution_base_url text,
  openai_base_url text,
  extra jsonb not null default '{}',  -- forward-compatible tenant settings (documented per key)
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (max_delay_ms >= min_delay_ms)
);

create table t_tenant_secrets (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references t_tenants (id) on delete cascade,
  name text not null check (name in ('evolution_api_key', 'openai_api_key')),
  value_enc bytea not null,   -- MultiFernet ciphertext bound to (table, id, name)
  fingerprint text not null,  -- sha256 of (tenant_id, name, value): lets plan see a change, never the value
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, name)
);
comment on table t_tenant_secrets is 'Sensitive: tenant API keys, encrypted; aal2 required to read.';

-- Personas, numbers, sessions ---------------------------------------------------------------------

create table t_personas (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references t_tenants (id) on delete cascade,
  key text not null,
  name text not null,
  style text not null default '',
  greeting_morning text[] not null default '{}',
  greeting_afternoon text[] not null default '{}',
  greeting_evening text[] not null default '{}',
  phrases jsonb not null default '{}',  -- phrase banks for the offline generator, by kind
  emoji_rate numeric(3, 2) not null default 0.3 check (emoji_rate between 0 and 1),
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, key),
  unique (tenant_id, id)
);

create table t_numbers (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references t_tenants (id) on delete cascade,
  key text not null,
  label text not null,
  wa_number text not null check (wa_number ~ '^\+[1-9][0-9]{7,14}$'),
  persona_id uuid,
  warmup_started_on date,
  active boolean not null default true,
  session_id uuid,  -- runtime: the current Evolution session (FK added below)
  status number_status not null default 'pending',  -- runtime
  status_reason text,  -- runtime
  connected_at timestamptz,  -- runtime
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, key),
  unique (tenant_id, wa_number),
  unique (tenant_id, id),
  foreign key (tenant_id, persona_id) references t_personas (tenant_id, id) on delete set null (persona_id)
);

create table t_sessions (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references t_tenants (id) on delete cascade,
  number_id uuid,
  instance_name text not null unique,  -- Evolution instance names are global to an Evolution server
  instance_id text,                    -- Evolution's instanceId (uuid), learned at create
  base_url text not null,
  token_enc bytea,           -- instance token (create.hash), MultiFernet ciphertext bound to this row
  token_hash text unique,    -- sha256 hex of the token, for lookups without decrypting
  webhook_secret_enc bytea,  -- x-webhook-secret header value, ciphertext
  jwt_key_enc bytea,         -- HS256 key Evolution signs webhook JWTs with, ciphertext
  last_qr_enc bytea,         -- latest QR (whoever scans it owns the session), ciphertext
  last_qr_at timestamptz,
  pairing_code_enc bytea,
  qr_count integer not null default 0,
  state text not null default 'close',  -- Evolution connection state: open | connecting | close | refused
  last_seen timestamptz,
  deprovisioned_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, id),
  foreign key (tenant_id, number_id) references t_numbers (tenant_id, id) on delete set null (number_id)
);
comment on table t_sessions is 'Sensitive: Evolution instance credentials, encrypted; aal2 required to read.';
create unique index t_sessions_live_number_idx on t_sessions (number_id)
  where number_id is not null and deprovisioned_at is null;

alter table t_numbers
  add foreign key (tenant_id, session_id) references t_sessions (tenant_id, id) on delete set null (session_id);

-- Contacts and opt-out ----------------------------------------------------------------------------

create table t_contacts (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references t_tenants (id) on delete cascade,
  wa_number text not null check (wa_number ~ '^\+[1-9][0-9]{7,14}$'),  -- the natural key
  display_name text not null default '',
  tags text[] not null default '{}',
  notes text not null default '',
  lid text,  -- runtime: the contact's @lid JID once seen in a webhook
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, wa_number),
  unique (tenant_id, id)
);
create index t_contacts_tags_idx on t_contacts using gin (tags);
create index t_contacts_lid_idx on t_contacts (tenant_id, lid) where lid is not null;

create table t_optouts (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references t_tenants (id) on delete cascade,
  wa_number text not null,
  contact_id uuid,
  keyword text,          -- what the person wrote that matched (normalised)
  source text not null default 'keyword' check (source in ('keyword', 'manual', 'import')),
  message_id uuid,       -- the message that carried the keyword
  created_at timestamptz not null default now(),
  unique (tenant_id, wa_number),
  foreign key (tenant_id, contact_id) references t_contacts (tenant_id, id) on delete set null (contact_id)
);
comment on table t_optouts is 'Tenant-wide, permanent opt-out list; runtime state the reconciler never deletes.';

-- Conversations ------------------------------------------------------------------------------------

create table t_conversations (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references t_tenants (id) on delete cascade,
  key text not null,
  name text not null,
  mode convo_mode not null default 'pair',
  active boolean not null default true,
  openai_model text not null default 'gpt-4o-mini',
  temperature numeric(3, 2) not null default 0.8 check (temperature between 0 and 2),
  topic_strategy text not null default 'rotate' check (topic_strategy in ('rotate', 'random', 'sticky')),
  topic_refresh_minutes integer not null default 180 check (topic_refresh_minutes > 0),
  exchanges_min integer not null default 2 check (exchanges_min between 1 and 10),
  exchanges_max integer not null default 4,
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, key),
  unique (tenant_id, id),
  check (exchanges_max >= exchanges_min)
);

create table t_settings_conversation (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  conversation_id uuid not null unique,
  -- null means "inherit the tenant setting"
  min_delay_ms integer check (min_delay_ms >= 0),
  max_delay_ms integer,
  hourly_burst_limit integer check (hourly_burst_limit > 0),
  humanize boolean,
  allow_bot_to_bot boolean,
  guard_no_echo boolean not null default true,
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (tenant_id, conversation_id) references t_conversations (tenant_id, id) on delete cascade,
  check (max_delay_ms is null or min_delay_ms is null or max_delay_ms >= min_delay_ms)
);

create table t_conversation_participants (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  conversation_id uuid not null,
  participant_kind participant_kind not null,
  number_id uuid,
  contact_id uuid,
  role text not null default 'any' check (role in ('starter', 'responder', 'any')),
  start_order integer not null default 0,
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (conversation_id, number_id),
  unique (conversation_id, contact_id),
  foreign key (tenant_id, conversation_id) references t_conversations (tenant_id, id) on delete cascade,
  foreign key (tenant_id, number_id) references t_numbers (tenant_id, id) on delete cascade,
  foreign key (tenant_id, contact_id) references t_contacts (tenant_id, id) on delete cascade,
  check ((participant_kind = 'bot' and number_id is not null and contact_id is null)
      or (participant_kind = 'human' and contact_id is not null and number_id is null))
);

create table t_pairings (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  conversation_id uuid not null,
  number_a_id uuid not null,   -- always a bot number
  number_b_id uuid,            -- a bot number ...
  contact_b_id uuid,           -- ... or a human contact (bot<->human needs an outreach policy)
  starts text not null default 'a' check (starts in ('a', 'b', 'either')),
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique nulls not distinct (conversation_id, number_a_id, number_b_id, contact_b_id),
  unique (tenant_id, id),
  foreign key (tenant_id, conversation_id) references t_conversations (tenant_id, id) on delete cascade,
  foreign key (tenant_id, number_a_id) references t_numbers (tenant_id, id) on delete cascade,
  foreign key (tenant_id, number_b_id) references t_numbers (tenant_id, id) on delete cascade,
  foreign key (tenant_id, contact_b_id) references t_contacts (tenant_id, id) on delete cascade,
  check ((number_b_id is null) <> (contact_b_id is null)),
  check (number_b_id is null or number_b_id <> number_a_id)
);

create table t_conversation_schedule (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  conversation_id uuid not null,
  day dow not null,
  morning_enabled boolean not null default false,
  morning_window jsonb,    -- {"start": "HH:MM", "end": "HH:MM"} in the tenant's timezone
  afternoon_enabled boolean not null default false,
  afternoon_window jsonb,
  evening_enabled boolean not null default false,
  evening_window jsonb,
  max_rounds_per_window integer not null default 1 check (max_rounds_per_window >= 0),
  pause_between_rounds_min integer not null default 20 check (pause_between_rounds_min >= 0),  -- minutes
  pause_between_rounds_max integer not null default 60,
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (conversation_id, day),
  foreign key (tenant_id, conversation_id) references t_conversations (tenant_id, id) on delete cascade,
  check (pause_between_rounds_max >= pause_between_rounds_min)
);

create table t_topics (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  conversation_id uuid not null,
  key text not null,
  seed text not null,
  system_prompt text not null default '',
  active_from date,
  active_to date,
  weight integer not null default 1 check (weight > 0),
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (conversation_id, key),
  foreign key (tenant_id, conversation_id) references t_conversations (tenant_id, id) on delete cascade,
  check (active_to is null or active_from is null or active_to >= active_from)
);

-- Outreach -----------------------------------------------------------------------------------------

create table t_outreach_policies (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references t_tenants (id) on delete cascade,
  key text not null,
  number_id uuid not null,
  persona_id uuid,
  daily_limit integer not null default 20 check (daily_limit > 0),
  hourly_limit integer not null default 5 check (hourly_limit > 0),
  max_rounds_per_contact integer not null default 3 check (max_rounds_per_contact > 0),
  min_gap_minutes integer not null default 30 check (min_gap_minutes >= 0),
  dayparts text[] not null default '{morning,afternoon}',
  allow_days dow[] not null default '{mon,tue,wed,thu,fri}',
  optout_keywords text[] not null default '{sair,parar,stop,"nao quero"}',
  active boolean not null default true,
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, key),
  unique (tenant_id, id),
  foreign key (tenant_id, number_id) references t_numbers (tenant_id, id) on delete cascade,
  foreign key (tenant_id, persona_id) references t_personas (tenant_id, id) on delete set null (persona_id),
  check (dayparts <@ array['morning', 'afternoon', 'evening'])
);

create table t_outreach_targets (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  policy_id uuid not null,
  contact_id uuid not null,
  priority integer not null default 0,
  status target_status not null default 'pending',  -- runtime
  last_contact_at timestamptz,                       -- runtime
  rounds_done integer not null default 0,            -- runtime
  next_action_at timestamptz,                        -- runtime: earliest time the scheduler may act
  applied_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (policy_id, contact_id),
  unique (tenant_id, id),
  foreign key (tenant_id, policy_id) references t_outreach_policies (tenant_id, id) on delete cascade,
  foreign key (tenant_id, contact_id) references t_contacts (tenant_id, id) on delete cascade
);
create index t_outreach_targets_queue_idx on t_outreach_targets (policy_id, status, priority desc, next_action_at);

-- Runtime: rounds, messages, webhook events, applies ---------------------------------------------------

create table t_rounds (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  conversation_id uuid,
  pairing_id uuid,
  target_id uuid,              -- outreach rounds
  status round_status not null default 'planned',
  daypart text check (daypart in ('morning', 'afternoon', 'evening')),
  window_date date,            -- local date of the window this round belongs to
  exchanges_planned integer not null default 2,
  exchanges_done integer not null default 0,
  turn_number_id uuid,         -- anti-loop: whose turn it is; a bot only answers on its turn
  script jsonb not null default '[]',
  started_at timestamptz,
  deadline_at timestamptz,     -- an active round past this is aborted
  finished_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, id),
  foreign key (tenant_id, conversation_id) references t_conversations (tenant_id, id) on delete set null (conversation_id),
  foreign key (tenant_id, pairing_id) references t_pairings (tenant_id, id) on delete set null (pairing_id),
  foreign key (tenant_id, target_id) references t_outreach_targets (tenant_id, id) on delete set null (target_id)
);
create index t_rounds_active_idx on t_rounds (tenant_id, status) where status in ('planned', 'active');

create table t_messages (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references t_tenants (id) on delete restrict,
  conversation_id uuid,
  round_id uuid,
  session_id uuid,
  from_number_id uuid,
  to_number_id uuid,
  contact_id uuid,
  from_jid text,              -- as seen on the wire, kept when configuration is deleted
  to_jid text,
  wa_msg_id text,             -- Evolution key.id / keyId
  quoted_wa_msg_id text,
  direction msg_direction not null,
  message_type text not null default 'conversation',
  body text,
  meta jsonb not null default '{}',  -- app_origin, script_id, topic, ignored reason, ...
  status msg_status not null,
  idempotency_key text unique,       -- outgoing: one send per logical message
  error text,
  wa_ts timestamptz,                 -- WhatsApp's messageTimestamp
  sent_at timestamptz,
  delivered_at timestamptz,
  read_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (session_id, wa_msg_id),
  foreign key (tenant_id, conversation_id) references t_conversations (tenant_id, id) on delete set null (conversation_id),
  foreign key (tenant_id, round_id) references t_rounds (tenant_id, id) on delete set null (round_id),
  foreign key (tenant_id, session_id) references t_sessions (tenant_id, id) on delete set null (session_id),
  foreign key (tenant_id, from_number_id) references t_numbers (tenant_id, id) on delete set null (from_number_id),
  foreign key (tenant_id, to_number_id) references t_numbers (tenant_id, id) on delete set null (to_number_id),
  foreign key (tenant_id, contact_id) references t_contacts (tenant_id, id) on delete set null (contact_id)
);
create index t_messages_tenant_time_idx on t_messages (tenant_id, created_at desc);
create index t_messages_from_number_time_idx on t_messages (tenant_id, from_number_id, created_at desc);
create index t_messages_to_number_time_idx on t_messages (tenant_id, to_number_id, created_at desc);
create index t_messages_conversation_time_idx on t_messages (tenant_id, conversation_id, created_at desc);
create index t_messages_round_idx on t_messages (round_id) where round_id is not null;
create index t_messages_pending_idx on t_messages (tenant_id, status) where status in ('queued', 'sending');

create table t_webhook_events (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references t_tenants (id) on delete restrict,
  session_id uuid,
  instance_name text not null,
  event_type text not null,
  idem_key text not null,        -- instance+key.id | keyId+status | sha256(body): retries land once
  payload jsonb not null,        -- the raw envelope, apikey and other secrets redacted
  signature text,                -- how the request was authenticated: header | jwt | hmac (never the secret)
  status text not null default 'stored' check (status in ('stored', 'processed', 'ignored', 'failed')),
  ignored_reason text,
  wa_ts timestamptz,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  unique (tenant_id, idem_key),
  foreign key (tenant_id, session_id) references t_sessions (tenant_id, id) on delete set null (session_id)
);
create index t_webhook_events_session_time_idx on t_webhook_events (session_id, received_at desc);
create index t_webhook_events_unprocessed_idx on t_webhook_events (received_at) where status = 'stored';

create table t_applies (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references t_tenants (id) on delete restrict,
  apply_id uuid not null,          -- one per `mirage apply` run, shared by its tenants' rows
  plan_hash text not null,
  actor text not null,             -- who applied: $MIRAGE_ACTOR, CI's actor, or user@host
  summary jsonb not null,          -- {"add": n, "change": n, "destroy": n}
  changes jsonb not null,          -- the tenant's plan items, secrets already rendered as (sensitive)
  created_at timestamptz not null default now(),
  unique (apply_id, tenant_id)
);
create index t_applies_tenant_time_idx on t_applies (tenant_id, created_at desc);

-- Hot-path indexes for the reconciler's one-query-per-table reads and the schedulers.
create index t_numbers_tenant_idx on t_numbers (tenant_id);
create index t_conversations_tenant_idx on t_conversations (tenant_id);
create index t_schedule_conversation_day_idx on t_conversation_schedule (tenant_id, conversation_id, day);
create index t_participants_tenant_idx on t_conversation_participants (tenant_id);
create index t_pairings_tenant_idx on t_pairings (tenant_id);
create index t_topics_tenant_idx on t_topics (tenant_id);
create index t_targets_tenant_idx on t_outreach_targets (tenant_id);
create index t_sessions_tenant_idx on t_sessions (tenant_id);
