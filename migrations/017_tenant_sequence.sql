-- Up Migration

-- Tenant-scoped ordering (docs/ordering.md). `position` is global: shown to a tenant, its gaps would tell how busy the
-- other tenants are. Every event of a tenant stream (events.tenant_id not null) now also gets `tenant_sequence`:
-- 1, 2, 3, ... per tenant, dense, in commit order, assigned by annalist_append under the append lock. Streams outside a
-- tenant category (compliance_<t>-lifecycle) have none.
alter table events add column tenant_sequence bigint check (tenant_sequence >= 1);

-- The last tenant_sequence handed out per tenant. Updated in the append's own transaction, so a rolled-back append
-- hands out nothing.
create table tenant_sequences (
  tenant_id text primary key,
  last_sequence bigint not null check (last_sequence >= 1)
);

update events e set tenant_sequence = numbered.tenant_sequence
from (
  select position, row_number() over (partition by tenant_id order by position) as tenant_sequence
  from events where tenant_id is not null
) numbered
where e.position = numbered.position;

insert into tenant_sequences (tenant_id, last_sequence)
select tenant_id, max(tenant_sequence) from events where tenant_id is not null group by tenant_id;

-- Partial, so that the planner keeps reading a tenant's log through events_tenant_position_idx (it cannot use this
-- index for a query that does not say `tenant_sequence is not null`).
create unique index events_tenant_sequence_key on events (tenant_id, tenant_sequence) where tenant_sequence is not null;

-- The tenant of a stream name, by the rule of the generated column events.tenant_id (migrations/001_event_store.sql):
-- the category before the first `-`, minus `tenant_`. annalist_append needs it before the row exists.
create function annalist_stream_tenant(p_stream text)
returns text
language sql immutable
as $$
  select case when left(split_part(p_stream, '-', 1), 7) = 'tenant_' then nullif(substr(split_part(p_stream, '-', 1), 8), '') end
$$;

-- The append of 005, now numbering a tenant stream's events per tenant. Same signature, result and lock. The counter
-- update and the insert sit in one block, so a unique violation (a repeated event ID) undoes both, and a rejected
-- revision check returns before either: a rejected or idempotently repeated append consumes no number. Under the
-- advisory lock no other append runs between the counter update and the commit, so numbers follow commit order.
-- PGlite: in process it is one connection; behind the embedded socket server, sessions are serialized
-- (dev/embeddedPostgres/sessionQueue.ts). Either way, no two appends interleave.
create or replace function annalist_append(p_stream text, p_expected text, p_events jsonb)
returns table (last_position bigint, last_revision bigint)
language plpgsql volatile
as $$
declare
  v_current bigint;
  v_deleted boolean := false;
  v_tombstoned boolean := false;
  v_position bigint;
  v_revision bigint;
  v_tenant text := annalist_stream_tenant(p_stream);
  v_count bigint := jsonb_array_length(p_events);
  v_last_sequence bigint;
  v_constraint text;
begin
  perform pg_advisory_xact_lock(7020670233826915188);
  select m.deleted, m.tombstoned into v_deleted, v_tombstoned from stream_metadata m where m.stream_name = p_stream;
  if coalesce(v_tombstoned, false) then
    return;
  end if;
  v_deleted := coalesce(v_deleted, false);
  select max(stream_revision) into v_current from events where stream_name = p_stream;
  if not annalist_expected_matches(p_expected, v_current, v_deleted) then
    return;
  end if;
  begin
    if v_tenant is not null then
      insert into tenant_sequences as s (tenant_id, last_sequence) values (v_tenant, v_count)
      on conflict (tenant_id) do update set last_sequence = s.last_sequence + excluded.last_sequence
      returning s.last_sequence into v_last_sequence;
    end if;
    with inserted as (
      insert into events (stream_name, stream_revision, event_id, event_type, schema_version, data, metadata, tenant_sequence)
      select p_stream, coalesce(v_current + 1, 0) + e.ordinality - 1, (e.value->>'eventId')::uuid, e.value->>'type',
             (e.value->>'schemaVersion')::integer, e.value->'data', e.value->'metadata',
             v_last_sequence - v_count + e.ordinality
      from jsonb_array_elements(p_events) with ordinality as e(value, ordinality)
      order by e.ordinality
      returning position, stream_revision
    )
    select max(position), max(stream_revision) into v_position, v_revision from inserted;
  exception when unique_violation then
    -- A repeated event ID or a taken revision: rejected, and the caller classifies it. A taken tenant sequence means
    -- tenant_sequences was set back outside this function: no retry can succeed, so say so rather than reject.
    get stacked diagnostics v_constraint = constraint_name;
    if v_constraint = 'events_tenant_sequence_key' then
      raise exception 'tenant_sequences is behind the stored events of tenant %: it was changed outside annalist_append; set its last_sequence to the highest events.tenant_sequence of that tenant', v_tenant
        using errcode = 'data_corrupted';
    end if;
    return;
  end;
  if v_deleted then
    update stream_metadata set deleted = false, metadata_revision = metadata_revision + 1, updated_at = now()
    where stream_name = p_stream;
  end if;
  perform pg_notify('annalist_events', v_position::text);
  return query select v_position, v_revision;
end;
$$;

-- The audit read model keeps the tenant sequence, so tenant-facing pages order and page by it (projections/auditTimeline).
alter table audit_timeline add column tenant_sequence bigint;
update audit_timeline a set tenant_sequence = e.tenant_sequence from events e where e.position = a.position;
-- Rows whose event was written around annalist_append (none in production): numbered after the others, by position.
update audit_timeline a set tenant_sequence = numbered.tenant_sequence
from (
  select position, coalesce((select max(tenant_sequence) from audit_timeline m where m.tenant_id = u.tenant_id), 0)
         + row_number() over (partition by tenant_id order by position) as tenant_sequence
  from audit_timeline u where u.tenant_sequence is null
) numbered
where a.position = numbered.position;
alter table audit_timeline alter column tenant_sequence set not null;
create index audit_timeline_tenant_sequence on audit_timeline (tenant_id, tenant_sequence);

-- Down Migration

drop index audit_timeline_tenant_sequence;
alter table audit_timeline drop column tenant_sequence;
create or replace function annalist_append(p_stream text, p_expected text, p_events jsonb)
returns table (last_position bigint, last_revision bigint)
language plpgsql volatile
as $$
declare
  v_current bigint;
  v_deleted boolean := false;
  v_tombstoned boolean := false;
  v_position bigint;
  v_revision bigint;
begin
  perform pg_advisory_xact_lock(7020670233826915188);
  select m.deleted, m.tombstoned into v_deleted, v_tombstoned from stream_metadata m where m.stream_name = p_stream;
  if coalesce(v_tombstoned, false) then
    return;
  end if;
  v_deleted := coalesce(v_deleted, false);
  select max(stream_revision) into v_current from events where stream_name = p_stream;
  if not annalist_expected_matches(p_expected, v_current, v_deleted) then
    return;
  end if;
  begin
    with inserted as (
      insert into events (stream_name, stream_revision, event_id, event_type, schema_version, data, metadata)
      select p_stream, coalesce(v_current + 1, 0) + e.ordinality - 1, (e.value->>'eventId')::uuid, e.value->>'type',
             (e.value->>'schemaVersion')::integer, e.value->'data', e.value->'metadata'
      from jsonb_array_elements(p_events) with ordinality as e(value, ordinality)
      order by e.ordinality
      returning position, stream_revision
    )
    select max(position), max(stream_revision) into v_position, v_revision from inserted;
  exception when unique_violation then
    return;
  end;
  if v_deleted then
    update stream_metadata set deleted = false, metadata_revision = metadata_revision + 1, updated_at = now()
    where stream_name = p_stream;
  end if;
  perform pg_notify('annalist_events', v_position::text);
  return query select v_position, v_revision;
end;
$$;
drop function annalist_stream_tenant(text);
drop index events_tenant_sequence_key;
drop table tenant_sequences;
alter table events drop column tenant_sequence;
