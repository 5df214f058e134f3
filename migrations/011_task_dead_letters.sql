-- Up Migration
-- Dead-lettered tasks (docs/dead-letters.md), written by the `task_dead_letters` projection
-- (projections/taskDeadLetters/). One row per pipeline run that failed by exhausting a step's retries
-- (TaskDeadLettered), keyed by tenant, task and that run's ID. A redrive (TaskRunStarted with reason 'redrive' whose
-- parentRunId is the row's run) marks the row redriven, once: the first redrive in log order wins. Every value comes
-- from the events, so a rebuild from position 0 gives identical rows.
create table task_dead_letters (
  tenant_id text not null,
  task_id text not null,
  -- The pipeline run that failed: the Temporal run ID that began it (a redrive's parentRunId).
  run_id text not null,
  -- Global position and ID of the TaskDeadLettered event.
  position bigint not null,
  event_id text not null,
  failed_step text not null check (failed_step in ('receive', 'route', 'plan', 'tools', 'synthesize', 'complete')),
  error_code text not null,
  message text not null,
  attempts integer not null check (attempts >= 0),
  retry_state text not null,
  -- Every recorded failed attempt: [{eventId, attempt, errorCode, message, occurredAt}], oldest first.
  failures jsonb not null,
  dead_lettered_at timestamptz not null,
  status text not null check (status in ('open', 'redriven')),
  redriven_by text,
  redriven_at timestamptz,
  redrive_run_id text,
  redrive_note text,
  -- Global position of the TaskRunStarted event that redrove the run.
  redrive_position bigint,
  primary key (tenant_id, task_id, run_id),
  check ((status = 'open') = (redrive_run_id is null))
);
-- One tenant's dead letters in one status, in log order (`dead-tasks list --tenant T --status open`).
create index task_dead_letters_tenant_status on task_dead_letters (tenant_id, status, position);
-- Every tenant's, in log order (the operator's `dead-tasks list`).
create index task_dead_letters_status on task_dead_letters (status, position);

-- Down Migration
drop table task_dead_letters;
