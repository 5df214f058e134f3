-- Up Migration
-- Outbox of side-effecting tools. One row per idempotency key: every attempt of a tool call (retry or zombie)
-- carries the same key, and `insert ... on conflict (idempotency_key) do nothing` leaves exactly one row.
create table tool_outbox (
  idempotency_key text primary key,
  id bigserial not null unique,
  tenant_id text not null,
  task_id text not null,
  tool_call_id text not null,
  channel text not null,
  message text not null,
  created_at timestamptz not null default now()
);

create index tool_outbox_tenant_task_idx on tool_outbox (tenant_id, task_id);
