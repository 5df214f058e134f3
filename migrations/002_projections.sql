-- Up Migration

-- Where each projection has got to in the global log: the last position whose effects are committed in its read model.
-- Written in the same transaction as the read-model rows, so a crash leaves both or neither.
create table projection_checkpoints (
  name text primary key,
  position bigint not null default 0 check (position >= 0),
  updated_at timestamptz not null default now()
);

-- Events a projection could not read or apply. Recorded, with the error, in the batch's transaction; never skipped silently.
create table projection_dead_letters (
  projection text not null,
  position bigint not null,
  event_id text not null,
  event_type text not null,
  stream_name text not null,
  error text not null,
  failed_at timestamptz not null default now(),
  primary key (projection, position)
);

-- One row per event: what happened in a tenant's task, flattened for compliance analysts.
create table audit_timeline (
  position bigint primary key,
  tenant_id text not null,
  task_id text not null,
  stream_revision bigint not null,
  event_id text not null,
  event_type text not null,
  occurred_at timestamptz not null,
  recorded_at timestamptz not null,
  workflow_id text not null,
  run_id text not null,
  activity_id text not null,
  attempt integer not null,
  correlation_id text not null,
  causation_id text,
  classification text not null,
  model_provider text,
  model_id text,
  model_version text,
  prompt_template_id text,
  prompt_template_version text,
  prompt_ref text,
  prompt_sha256 text,
  route text,
  tool_name text,
  tool_call_id text,
  idempotency_key text,
  side_effect_id text,
  error_code text,
  will_retry boolean,
  input_tokens integer,
  output_tokens integer,
  cost_usd numeric,
  latency_ms numeric,
  summary text not null
);
create index audit_timeline_tenant_position on audit_timeline (tenant_id, position);
create index audit_timeline_tenant_task_position on audit_timeline (tenant_id, task_id, position);

-- One row per task: where it stands and what it has cost so far.
create table task_summary (
  tenant_id text not null,
  task_id text not null,
  status text not null check (status in ('received', 'running', 'completed', 'failed')),
  current_step text not null check (current_step in ('receive', 'route', 'plan', 'tools', 'synthesize', 'complete')),
  failed_step text,
  error_code text,
  route text,
  tool_calls_succeeded integer not null default 0,
  tool_calls_failed integer not null default 0,
  model_attempts_failed integer not null default 0,
  models_used jsonb not null default '[]'::jsonb,
  total_tokens bigint not null default 0,
  total_cost_usd numeric not null default 0,
  events_applied integer not null default 0,
  started_at timestamptz,
  finished_at timestamptz,
  first_position bigint not null,
  last_position bigint not null,
  primary key (tenant_id, task_id)
);
create index task_summary_tenant_first_position on task_summary (tenant_id, first_position);

-- Down Migration

drop table task_summary;
drop table audit_timeline;
drop table projection_dead_letters;
drop table projection_checkpoints;
