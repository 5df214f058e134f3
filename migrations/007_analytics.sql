-- Up Migration
-- Cross-tenant analytics facts, written by the `analytics` projection (projections/analytics/). Every row is keyed by
-- the global position of the event it came from, so applying an event twice inserts nothing, and every value comes
-- from the event itself, so a rebuild from position 0 gives identical rows. Aggregates (cost per tenant per day,
-- percentiles) are computed by the queries in projections/analytics/query.ts over time-window index scans.

-- One row per model call, successful or failed, of any step.
create table analytics_model_invocations (
  position bigint primary key,
  tenant_id text not null,
  task_id text not null,
  step text not null check (step in ('route', 'plan', 'synthesize')),
  outcome text not null check (outcome in ('ok', 'failed')),
  attempt integer not null,
  provider text not null,
  model_id text not null,
  model_version text not null,
  prompt_template_id text not null,
  prompt_template_version text not null,
  latency_ms double precision not null,
  -- Zero for failed calls: a failure records no usage.
  input_tokens integer not null,
  output_tokens integer not null,
  cost_usd numeric not null,
  error_code text,
  occurred_at timestamptz not null
);
create index analytics_model_invocations_occurred_at on analytics_model_invocations (occurred_at);
create index analytics_model_invocations_tenant_occurred_at on analytics_model_invocations (tenant_id, occurred_at);

-- One row per failure at a pipeline step. `kind` tells a failed model attempt ('model_attempt') and a failed tool
-- call ('tool_call') apart from the task giving up at that step ('task', from AgentTaskFailed.failedStep).
create table analytics_step_failures (
  position bigint primary key,
  tenant_id text not null,
  task_id text not null,
  step text not null check (step in ('receive', 'route', 'plan', 'tools', 'synthesize', 'complete')),
  kind text not null check (kind in ('model_attempt', 'tool_call', 'task')),
  error_code text not null,
  attempt integer not null,
  occurred_at timestamptz not null
);
create index analytics_step_failures_occurred_at on analytics_step_failures (occurred_at);
create index analytics_step_failures_step_occurred_at on analytics_step_failures (step, occurred_at);
create index analytics_step_failures_tenant_occurred_at on analytics_step_failures (tenant_id, occurred_at);

-- One row per finished tool call.
create table analytics_tool_calls (
  position bigint primary key,
  tenant_id text not null,
  task_id text not null,
  tool_name text not null,
  outcome text not null check (outcome in ('ok', 'failed')),
  error_code text,
  latency_ms double precision not null,
  occurred_at timestamptz not null
);
create index analytics_tool_calls_occurred_at on analytics_tool_calls (occurred_at);
create index analytics_tool_calls_tenant_occurred_at on analytics_tool_calls (tenant_id, occurred_at);

-- Down Migration
drop table analytics_tool_calls;
drop table analytics_step_failures;
drop table analytics_model_invocations;
