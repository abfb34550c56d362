-- How long an outreach policy waits for a person's answer before the target ends `done` (issue 13,
-- `reply_wait_hours` in outreach.yaml). Existing policies take the default the runtime used until now: 24 hours.
alter table public.t_outreach_policies
  add column reply_wait_hours integer not null default 24 check (reply_wait_hours between 1 and 720);
comment on column public.t_outreach_policies.reply_wait_hours is
  'Hours without an answer after our last message before the target ends done (1..720, default 24).';
