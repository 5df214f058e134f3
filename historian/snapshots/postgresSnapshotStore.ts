import type { Database } from '../adapters/postgres/database'
import { assertTenantId, parseTaskStreamName } from '../streams'
import type { SnapshotBound, SnapshotStore, StoredSnapshot, TaskSnapshot } from './snapshotStore'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

interface SnapshotRow {
  stream_name: string
  revision_text: string
  tenant_id: string
  event_id: string
  latest_recorded_at: Date
  state_version: number
  state: unknown
  created_at: Date
}

/** Snapshots in the `task_snapshots` table (migrations/006_snapshots.sql), on a PostgreSQL server or PGlite. */
export class PostgresSnapshotStore implements SnapshotStore {
  constructor(private readonly database: Database) {}

  async findLatest(tenantId: string, streamName: string, stateVersion: number, bound?: SnapshotBound): Promise<StoredSnapshot | undefined> {
    assertStreamOfTenant(tenantId, streamName)
    if (!Number.isSafeInteger(stateVersion) || stateVersion < 1) throw new RangeError(`stateVersion must be a whole number >= 1, got ${String(stateVersion)}`)
    const revision = bound && 'revision' in bound ? bound.revision : undefined
    const recordedAt = bound && 'recordedAtOrBefore' in bound ? bound.recordedAtOrBefore : undefined
    if (revision !== undefined && (typeof revision !== 'bigint' || revision < 0n)) throw new RangeError(`bound revision must be a bigint >= 0, got ${String(revision)}`)
    if (recordedAt !== undefined && !(recordedAt instanceof Date && Number.isFinite(recordedAt.getTime()))) throw new RangeError('bound recordedAtOrBefore must be a valid Date')
    const { rows } = await this.database.pool.query<SnapshotRow>(
      `select stream_name, revision::text as revision_text, tenant_id, event_id, latest_recorded_at, state_version, state, created_at
         from task_snapshots
        where tenant_id = $1 and stream_name = $2 and state_version = $3
          and ($4::bigint is null or revision <= $4::bigint)
          and ($5::timestamptz is null or latest_recorded_at <= $5::timestamptz)
        order by revision desc
        limit 1`,
      [tenantId, streamName, stateVersion, revision?.toString() ?? null, recordedAt?.toISOString() ?? null],
    )
    const row = rows[0]
    if (!row) return undefined
    return {
      tenantId: row.tenant_id,
      streamName: row.stream_name,
      revision: BigInt(row.revision_text),
      eventId: row.event_id,
      latestRecordedAt: row.latest_recorded_at,
      stateVersion: row.state_version,
      state: row.state,
      createdAt: row.created_at,
    }
  }

  async save(snapshots: readonly TaskSnapshot[]): Promise<void> {
    if (snapshots.length === 0) return
    const rows = snapshots.map((snapshot) => {
      assertStreamOfTenant(snapshot.tenantId, snapshot.streamName)
      const at = `snapshot of ${snapshot.streamName}@${String(snapshot.revision)}`
      if (typeof snapshot.revision !== 'bigint' || snapshot.revision < 0n) throw new RangeError(`${at}: the revision must be a bigint >= 0`)
      if (!UUID.test(snapshot.eventId)) throw new RangeError(`${at}: the event ID must be a UUID, got ${JSON.stringify(snapshot.eventId)}`)
      if (!(snapshot.latestRecordedAt instanceof Date) || !Number.isFinite(snapshot.latestRecordedAt.getTime())) throw new RangeError(`${at}: latestRecordedAt must be a valid Date`)
      if (!Number.isSafeInteger(snapshot.stateVersion) || snapshot.stateVersion < 1) throw new RangeError(`${at}: the state version must be a whole number >= 1`)
      const state = JSON.stringify(snapshot.state)
      if (state === undefined) throw new RangeError(`${at}: the state is not JSON`)
      return {
        stream_name: snapshot.streamName,
        revision: snapshot.revision.toString(),
        tenant_id: snapshot.tenantId,
        event_id: snapshot.eventId,
        latest_recorded_at: snapshot.latestRecordedAt.toISOString(),
        state_version: snapshot.stateVersion,
        state: snapshot.state,
        state_bytes: Buffer.byteLength(state, 'utf8'),
      }
    })
    // One statement for the whole batch. A row already stored for the same (stream, revision) stays unless it was
    // folded by another state version or at another event (the stream was rewritten): then the new one replaces it.
    await this.database.pool.query(
      `insert into task_snapshots as s (stream_name, revision, tenant_id, event_id, latest_recorded_at, state_version, state, state_bytes)
       select stream_name, revision, tenant_id, event_id, latest_recorded_at, state_version, state, state_bytes
         from jsonb_to_recordset($1::jsonb) as r(stream_name text, revision bigint, tenant_id text, event_id uuid,
              latest_recorded_at timestamptz, state_version integer, state jsonb, state_bytes integer)
       on conflict (stream_name, revision) do update
          set tenant_id = excluded.tenant_id, event_id = excluded.event_id, latest_recorded_at = excluded.latest_recorded_at,
              state_version = excluded.state_version, state = excluded.state, state_bytes = excluded.state_bytes, created_at = now()
        where (s.state_version, s.event_id) is distinct from (excluded.state_version, excluded.event_id)`,
      [JSON.stringify(rows)],
    )
  }

  async deleteStream(tenantId: string, streamName: string): Promise<number> {
    assertStreamOfTenant(tenantId, streamName)
    const result = await this.database.pool.query('delete from task_snapshots where tenant_id = $1 and stream_name = $2', [tenantId, streamName])
    return result.rowCount ?? 0
  }
}

/** Refuses, before any I/O, a stream name that is not one of `tenantId`'s task streams. */
function assertStreamOfTenant(tenantId: string, streamName: string): void {
  assertTenantId(tenantId)
  const owner = parseTaskStreamName(streamName).tenantId
  if (owner !== tenantId) throw new RangeError(`stream ${streamName} belongs to tenant ${owner}, not ${tenantId}: snapshots are only read for their own tenant`)
}
