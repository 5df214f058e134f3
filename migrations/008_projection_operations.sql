-- Up Migration
-- What operating the projection runner needs (projections/runner.ts, deadLetters.ts, lag.ts, rebuild.ts).

-- The lag of the last committed batch, from the database clock: clock_timestamp() at commit time minus the oldest
-- recorded_at among the batch's events. Written with the checkpoint, in the batch's transaction.
alter table projection_checkpoints
  add column last_batch_lag_ms double precision check (last_batch_lag_ms is null or last_batch_lag_ms >= 0),
  add column last_batch_at timestamptz;

-- How often a dead letter has been tried: 1 when the runner first fails on it, +1 per retry that fails again.
alter table projection_dead_letters
  add column attempts integer not null default 1 check (attempts >= 1),
  add column last_retried_at timestamptz;

-- Dead letters that are resolved: applied by a retry, or gone because a rebuild applied the event. A resolved letter
-- moves here in the transaction that applied its event, so the record of a poison event never silently vanishes.
create table projection_dead_letter_history (
  id bigserial primary key,
  projection text not null,
  position bigint not null,
  event_id text not null,
  event_type text not null,
  stream_name text not null,
  -- The last error the event raised before it was resolved.
  error text not null,
  attempts integer not null check (attempts >= 1),
  failed_at timestamptz not null,
  resolved_at timestamptz not null default now(),
  resolution text not null check (resolution in ('retried', 'rebuilt'))
);
create index projection_dead_letter_history_projection_position on projection_dead_letter_history (projection, position);

-- Down Migration
drop table projection_dead_letter_history;
alter table projection_dead_letters drop column last_retried_at, drop column attempts;
alter table projection_checkpoints drop column last_batch_at, drop column last_batch_lag_ms;
