-- Up Migration
-- One append = one statement = one round trip. The function runs in the caller's transaction (or, called alone, in the
-- statement's implicit one), so the advisory lock it takes is held until that transaction ends: positions become
-- visible in commit order (docs/ordering.md). Each statement of a VOLATILE plpgsql function takes a fresh snapshot
-- under READ COMMITTED, so the revision check after the lock sees every append committed before it.
-- Returns no row when the append is rejected (expected revision mismatch, or an event ID already in the stream);
-- the caller then classifies the rejection from what the stream holds.
create function annalist_append(p_stream text, p_expected text, p_events jsonb)
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

-- Down Migration
drop function annalist_append(text, text, jsonb);
