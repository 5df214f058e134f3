import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { EventIdConflictError, StreamTombstonedError } from '../../historian/port'
import { DATABASE_BACKENDS, freshPostgresDatabase } from '../support/databases'
import { freshStream, freshTenant, newEvents } from '../support/eventStoreContract'

const WAIT = { timeout: 10_000, interval: 20 }

async function rowsOf(database: Database, stream: string): Promise<number> {
  const { rows } = await database.pool.query<{ count: number }>('select count(*)::int as count from events where stream_name = $1', [stream])
  return rows[0]!.count
}

/** A store over a database opened before the enclosing block's tests and closed after them. */
function storeForBlock(open: () => Promise<Database>): { readonly database: Database; readonly store: PostgresEventStore } {
  const fixture = {} as { database: Database; store: PostgresEventStore }
  beforeAll(async () => {
    fixture.database = await open()
    fixture.store = new PostgresEventStore(fixture.database)
  })
  afterAll(async () => {
    await fixture.store?.close()
    await fixture.database?.close()
  })
  return fixture
}

describe.each(DATABASE_BACKENDS)('stream lifecycle in PostgreSQL on $backend', ({ open }) => {
  const fixture = storeForBlock(open)

  it('keeps the rows of a soft-deleted stream and records the delete as truncate-before in stream_metadata', async () => {
    const stream = freshStream()
    await fixture.store.appendToStream(stream, newEvents(3), { expectedRevision: 'no_stream' })
    await fixture.store.deleteStream(stream, { expectedRevision: 2n })
    expect(await rowsOf(fixture.database, stream)).toBe(3)
    const { rows } = await fixture.database.pool.query('select truncate_before::int, deleted, tombstoned, metadata_revision::int from stream_metadata where stream_name = $1', [
      stream,
    ])
    expect(rows).toEqual([{ truncate_before: 3, deleted: true, tombstoned: false, metadata_revision: 0 }])
  })

  it('writes no row when appending to a tombstoned stream', async () => {
    const stream = freshStream()
    await fixture.store.appendToStream(stream, newEvents(2), { expectedRevision: 'no_stream' })
    await fixture.store.tombstoneStream(stream, { expectedRevision: 'any' })
    for (const expectedRevision of ['any', 'no_stream', 1n] as const) {
      await expect(fixture.store.appendToStream(stream, newEvents(1), { expectedRevision })).rejects.toBeInstanceOf(StreamTombstonedError)
    }
    expect(await rowsOf(fixture.database, stream)).toBe(2)
  })

  it('refuses to re-append event IDs that a soft delete hid, with EventIdConflictError naming them, and writes nothing', async () => {
    const stream = freshStream()
    const first = newEvents(2)
    await fixture.store.appendToStream(stream, first, { expectedRevision: 'no_stream' })
    await fixture.store.deleteStream(stream, { expectedRevision: 1n })
    const error = await fixture.store.appendToStream(stream, [first[1]!, ...newEvents(1)], { expectedRevision: 'no_stream' }).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(EventIdConflictError)
    expect((error as EventIdConflictError).conflictingEventIds).toEqual([first[1]!.eventId])
    expect(await rowsOf(fixture.database, stream)).toBe(2)
    expect(await fixture.store.readStream(stream)).toEqual([])
  })
})

describe('stream lifecycle on the PostgreSQL server', () => {
  const fixture = storeForBlock(() => freshPostgresDatabase())

  it("reads one tenant's log, retention applied, through its index and primary-key probes of stream_metadata only", async () => {
    // Enough other tenants' events and metadata that scanning them would be the cheaper plan if the query allowed it.
    await fixture.database.pool.query(
      `insert into events (stream_name, stream_revision, event_id, event_type, data, metadata)
       select 'tenant_bulk' || (n % 50) || '-task' || (n % 500), n / 500, gen_random_uuid(), 'Bulk', '{}'::jsonb, '{}'::jsonb
       from generate_series(1, 5000) as n`,
    )
    await fixture.database.pool.query(`insert into stream_metadata (stream_name, max_count) select 'tenant_bulk' || (n % 50) || '-task' || n, 3 from generate_series(1, 500) as n`)
    const tenant = freshTenant()
    const stream = freshStream(tenant)
    await fixture.store.appendToStream(stream, newEvents(4), { expectedRevision: 'no_stream' })
    await fixture.store.setStreamMetadata(stream, { maxCount: 2 })
    await fixture.database.pool.query('analyze events')
    await fixture.database.pool.query('analyze stream_metadata')

    // The query the store really runs, captured on its way to the pool, then explained with the same parameters.
    const queries: { text: string; values: unknown[] }[] = []
    const spied = new PostgresEventStore({
      ...fixture.database,
      pool: new Proxy(fixture.database.pool, {
        get(target, property) {
          if (property === 'query') {
            return (text: string, values: unknown[]) => {
              queries.push({ text, values })
              return target.query(text, values)
            }
          }
          const value: unknown = Reflect.get(target, property, target)
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
        },
      }),
    })
    expect((await spied.readTenantLog(tenant)).map((event) => event.revision)).toEqual([2n, 3n])
    const [query] = queries
    const { rows } = await fixture.database.pool.query<{ 'QUERY PLAN': unknown }>(`explain (format json) ${query!.text}`, query!.values)
    const plan = JSON.stringify(rows[0]!['QUERY PLAN'])
    expect(plan).toContain('"Index Name":"events_tenant_position_idx"')
    expect(plan).toContain('"Index Name":"stream_metadata_pkey"')
    expect(plan).not.toMatch(/"Node Type":"Seq Scan"/)
    expect(plan).not.toMatch(/"Node Type":"Hash Join"/)
  })

  it('never shows a later position before an earlier writer commits: readers that follow the log skip nothing', async () => {
    const tenant = freshTenant()
    const checkpoint = (await fixture.store.appendToStream(freshStream(tenant), newEvents(1), { expectedRevision: 'no_stream' })).position
    const stalledEvents = newEvents(2)
    const stalled = await fixture.database.pool.connect()
    let others: Promise<unknown>[] = []
    try {
      await stalled.query('begin')
      expect((await fixture.store.appendInTransaction(stalled, freshStream(tenant), stalledEvents, 'no_stream')).status).toBe('written')
      others = [1, 2, 3].map(() => fixture.store.appendToStream(freshStream(tenant), newEvents(2), { expectedRevision: 'no_stream' }))
      await vi.waitFor(async () => {
        const { rows } = await fixture.database.pool.query<{ waiting: number }>("select count(*)::int as waiting from pg_locks where locktype = 'advisory' and not granted")
        expect(rows[0]!.waiting).toBe(3)
      }, WAIT)
      // The later appenders wait for the append lock, so nothing after the checkpoint is visible yet.
      expect(await fixture.store.readAll({ after: checkpoint })).toEqual([])
      await stalled.query('commit')
    } finally {
      stalled.release()
    }
    await Promise.all(others)
    const read = await fixture.store.readAll({ after: checkpoint })
    const positions = read.map((event) => event.position)
    expect(new Set(positions).size).toBe(8)
    expect(positions.every((position, index) => index === 0 || position > positions[index - 1]!)).toBe(true)
    expect(read.slice(0, 2).map((event) => event.eventId)).toEqual(stalledEvents.map((event) => event.eventId))
  })
})
