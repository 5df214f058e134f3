-- Up Migration

-- The event log. `position` is the global order (1, 2, 3, ...; gaps appear where an append rolled back).
-- Appends are serialized by a transaction-scoped advisory lock (historian/adapters/postgres/postgresEventStore.ts),
-- so positions become visible in commit order and `position > checkpoint` never skips a late commit.
create table events (
  position bigserial primary key,
  stream_name text not null check (stream_name <> ''),
  -- Derived from the stream name so no writer can get them wrong: the category is the prefix before the first `-`
  -- (as in EventStoreDB's $ce- projection), the tenant is the category minus `tenant_`.
  category text not null generated always as (split_part(stream_name, '-', 1)) stored,
  tenant_id text generated always as (
    case when left(split_part(stream_name, '-', 1), 7) = 'tenant_'
      then nullif(substr(split_part(stream_name, '-', 1), 8), '')
    end
  ) stored,
  stream_revision bigint not null check (stream_revision >= 0),
  event_id uuid not null,
  event_type text not null check (event_type <> ''),
  schema_version integer not null default 1,
  data jsonb not null,
  metadata jsonb not null,
  recorded_at timestamptz not null default now(),
  constraint events_stream_revision_key unique (stream_name, stream_revision),
  constraint events_stream_event_id_key unique (stream_name, event_id)
);

-- One tenant's log in global order without scanning other tenants (readTenantLog).
create index events_tenant_position_idx on events (tenant_id, position);
-- One event type across tenants in global order (readEventType).
create index events_type_position_idx on events (event_type, position);

-- Down Migration

drop table events;
