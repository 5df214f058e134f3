-- Up Migration
-- Snapshots of folded task state, beside the event log (historian/snapshots/). A cache, never the source of truth: a
-- reader uses a snapshot only if state_version is the fold's current version and the stream still holds event_id at
-- revision; otherwise it folds from the events alone. One row per (stream, revision).
create table task_snapshots (
  stream_name text not null,
  revision bigint not null check (revision >= 0),
  -- The stream's tenant, checked against the stream name, so a snapshot can only be found by its own tenant.
  tenant_id text not null check (tenant_id ~ '^[a-z0-9_]{1,64}$'),
  event_id uuid not null,
  latest_recorded_at timestamptz not null,
  state_version integer not null check (state_version > 0),
  state jsonb not null,
  state_bytes integer not null check (state_bytes >= 0),
  created_at timestamptz not null default now(),
  primary key (stream_name, revision),
  constraint task_snapshots_stream_of_tenant check (starts_with(stream_name, 'tenant_' || tenant_id || '-'))
);

-- Down Migration
drop table task_snapshots;
