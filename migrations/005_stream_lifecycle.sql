-- Up Migration

-- Per-stream lifecycle and retention, as in EventStoreDB's stream metadata ($maxAge, $maxCount, $tb, soft delete,
-- tombstone). A stream without a row has no rules. Reads enforce the rules in SQL (historian/adapters/postgres/
-- postgresEventStore.ts); the events themselves are kept, as EventStoreDB keeps them until a scavenge.
create table stream_metadata (
  stream_name text primary key check (stream_name <> ''),
  max_age_seconds integer check (max_age_seconds >= 1),
  max_count integer check (max_count >= 1),
  truncate_before bigint check (truncate_before >= 0),
  -- 0 after the first change (a soft delete counts as one, as it writes EventStoreDB's metadata stream), +1 per change.
  metadata_revision bigint not null default 0 check (metadata_revision >= 0),
  -- Soft-deleted and not appended to since: 'no_stream' is accepted again. truncate_before then hides every event.
  deleted boolean not null default false,
  -- Tombstoned: no append, read, delete or metadata change ever again.
  tombstoned boolean not null default false,
  updated_at timestamptz not null default now(),
  check (not (deleted and tombstoned))
);

-- Whether a stream at p_current (null: no event ever), soft-deleted or not, satisfies an expected revision.
-- A soft-deleted stream accepts 'no_stream', 'any' and its last revision, and refuses 'stream_exists' (EventStoreDB's rules).
create function annalist_expected_matches(p_expected text, p_current bigint, p_deleted boolean)
returns boolean
language sql immutable
as $$
  select p_expected = 'any'
    or (p_expected = 'no_stream' and (p_current is null or p_deleted))
    or (p_expected = 'stream_exists' and p_current is not null and not p_deleted)
    or (p_expected ~ '^[0-9]+$' and p_current is not null and p_current = p_expected::bigint)
$$;

-- The append of 004, now aware of stream lifecycle: a tombstoned stream refuses every append, a soft-deleted one takes
-- 'no_stream' again and continues its revisions (its earlier events stay below truncate_before). Same signature and
-- result, same advisory lock first (docs/ordering.md). Returns no row when rejected; the caller classifies why.
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

-- Soft-deletes (p_tombstone false) or tombstones a stream under the append lock, so no append slips between the
-- revision check and the change. Result 'ok', 'wrong_expected' (with the stream's state) or 'tombstoned'.
create function annalist_delete_stream(p_stream text, p_expected text, p_tombstone boolean)
returns table (result text, result_revision bigint, result_deleted boolean)
language plpgsql volatile
as $$
declare
  v_current bigint;
  v_deleted boolean := false;
  v_tombstoned boolean := false;
begin
  perform pg_advisory_xact_lock(7020670233826915188);
  select m.deleted, m.tombstoned into v_deleted, v_tombstoned from stream_metadata m where m.stream_name = p_stream for update;
  if coalesce(v_tombstoned, false) then
    return query select 'tombstoned'::text, null::bigint, null::boolean;
    return;
  end if;
  v_deleted := coalesce(v_deleted, false);
  select max(e.stream_revision) into v_current from events e where e.stream_name = p_stream;
  if not annalist_expected_matches(p_expected, v_current, v_deleted) then
    return query select 'wrong_expected'::text, v_current, v_deleted;
    return;
  end if;
  if p_tombstone then
    insert into stream_metadata as m (stream_name, tombstoned) values (p_stream, true)
    on conflict (stream_name) do update set tombstoned = true, deleted = false, updated_at = now();
  else
    insert into stream_metadata as m (stream_name, truncate_before, deleted) values (p_stream, coalesce(v_current + 1, 0), true)
    on conflict (stream_name) do update
      set truncate_before = excluded.truncate_before, deleted = true, metadata_revision = m.metadata_revision + 1, updated_at = now();
  end if;
  return query select 'ok'::text, v_current, v_deleted;
end;
$$;

-- Replaces a stream's retention rules under the append lock, checking the expected metadata revision ('any',
-- 'no_metadata' or a number). New rules end a pending soft delete but keep its events hidden (truncate_before is not
-- lowered below the delete's), as EventStoreDB re-adds its $tb. Result 'ok' (with the new revision),
-- 'wrong_expected' (with the current one, null if none) or 'tombstoned'.
create function annalist_set_stream_metadata(p_stream text, p_expected text, p_max_age integer, p_max_count integer, p_truncate_before bigint)
returns table (result text, result_metadata_revision bigint)
language plpgsql volatile
as $$
declare
  v_meta stream_metadata%rowtype;
  v_found boolean;
  v_truncate_before bigint := p_truncate_before;
begin
  perform pg_advisory_xact_lock(7020670233826915188);
  select * into v_meta from stream_metadata m where m.stream_name = p_stream for update;
  v_found := found;
  if v_found and v_meta.tombstoned then
    return query select 'tombstoned'::text, null::bigint;
    return;
  end if;
  if not (p_expected = 'any'
      or (p_expected = 'no_metadata' and not v_found)
      or (p_expected ~ '^[0-9]+$' and v_found and v_meta.metadata_revision = p_expected::bigint)) then
    return query select 'wrong_expected'::text, case when v_found then v_meta.metadata_revision end;
    return;
  end if;
  if v_found and v_meta.deleted and coalesce(v_truncate_before, 0) < v_meta.truncate_before then
    v_truncate_before := v_meta.truncate_before;
  end if;
  insert into stream_metadata as m (stream_name, max_age_seconds, max_count, truncate_before)
  values (p_stream, p_max_age, p_max_count, v_truncate_before)
  on conflict (stream_name) do update
    set max_age_seconds = excluded.max_age_seconds, max_count = excluded.max_count, truncate_before = excluded.truncate_before,
        deleted = false, metadata_revision = m.metadata_revision + 1, updated_at = now();
  return query select 'ok'::text, m.metadata_revision from stream_metadata m where m.stream_name = p_stream;
end;
$$;

-- Down Migration

drop function annalist_set_stream_metadata(text, text, integer, integer, bigint);
drop function annalist_delete_stream(text, text, boolean);
create or replace function annalist_append(p_stream text, p_expected text, p_events jsonb)
returns table (last_position bigint, last_revision bigint)
language plpgsql volatile
as $$
declare
  v_current bigint;
  v_position bigint;
  v_revision bigint;
begin
  perform pg_advisory_xact_lock(7020670233826915188);
  select max(stream_revision) into v_current from events where stream_name = p_stream;
  if not (
    p_expected = 'any'
    or (p_expected = 'no_stream' and v_current is null)
    or (p_expected = 'stream_exists' and v_current is not null)
    or (p_expected ~ '^[0-9]+$' and v_current is not null and v_current = p_expected::bigint)
  ) then
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
  perform pg_notify('annalist_events', v_position::text);
  return query select v_position, v_revision;
end;
$$;
drop function annalist_expected_matches(text, bigint, boolean);
drop table stream_metadata;
