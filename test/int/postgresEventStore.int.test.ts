import { describe, expect, it, vi } from 'vitest'
import { EventStoreUnavailableError } from '../../historian/port'
import { openDatabase, DatabaseConnectionError } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { freshPostgresDatabase, postgresStoreForSuite, postgresStoreOn } from '../support/databases'
import { eventStoreContract, freshStream, newEvents } from '../support/eventStoreContract'
import { explainTenantLogRead } from '../../bench/tenantReadPlan'

eventStoreContract('PostgreSQL server', async () => postgresStoreOn(await freshPostgresDatabase()))

describe('PostgresEventStore on a PostgreSQL server', () => {
  const suite = postgresStoreForSuite()

  it('reports exactly one of two identical concurrent appends as written', async () => {
    const stream = freshStream()
    const batch = newEvents(2)
    const results = await Promise.all([1, 2, 3].map(() => suite.store.appendToStream(stream, batch, { expectedRevision: 'no_stream' })))
    expect(results.filter((result) => result.written)).toHaveLength(1)
    expect(await suite.store.readStream(stream)).toHaveLength(2)
  })

  it('derives category, tenant and schema version columns, and keeps each tenant on its index', async () => {
    const stream = freshStream('t_columns')
    await suite.store.appendToStream(stream, [{ ...newEvents(1)[0]!, metadata: { schemaVersion: 3 } }], { expectedRevision: 'no_stream' })
    const { rows } = await suite.database.pool.query('select category, tenant_id, schema_version from events where stream_name = $1', [stream])
    expect(rows).toEqual([{ category: 'tenant_t_columns', tenant_id: 't_columns', schema_version: 3 }])

    // Enough other tenants' rows that a scan would cost more than the index.
    await suite.database.pool.query(
      `insert into events (stream_name, stream_revision, event_id, event_type, data, metadata)
       select 'tenant_bulk' || (n % 50) || '-task' || n, 0, gen_random_uuid(), 'Bulk', '{}'::jsonb, '{}'::jsonb
       from generate_series(1, 5000) as n`,
    )
    await suite.database.pool.query('analyze events')
    const plan = await suite.database.pool.query<{ 'QUERY PLAN': string }>(
      "explain select * from events where tenant_id = 't_columns' and position > 0 order by position limit 1000",
    )
    const text = plan.rows.map((row) => row['QUERY PLAN']).join('\n')
    expect(text).toMatch(/events_tenant_position_idx/)
  })

  it("reads one tenant's log without reading a row of any other tenant (EXPLAIN ANALYZE, BUFFERS of the store's own query)", async () => {
    const tenant = 't_isolated'
    await suite.store.appendToStream(freshStream(tenant), newEvents(2), { expectedRevision: 'no_stream' })
    // Other tenants' events before and after this tenant's, so their rows share its pages and its index's neighbourhood.
    const bulk = (wave: string) =>
      suite.database.pool.query(
        `insert into events (stream_name, stream_revision, event_id, event_type, data, metadata)
         select 'tenant_other' || (n % 100) || '-task' || $1 || n, 0, gen_random_uuid(), 'Bulk', jsonb_build_object('padding', repeat('x', 200)), '{}'::jsonb
         from generate_series(1, 3000) as n`,
        [wave],
      )
    await bulk('a')
    await suite.store.appendToStream(freshStream(tenant), newEvents(1), { expectedRevision: 'no_stream' })
    await bulk('b')
    await suite.database.pool.query('vacuum analyze events')
    const { rows } = await suite.database.pool.query<{ pages: number }>("select relpages as pages from pg_class where relname = 'events'")
    const tablePages = rows[0]!.pages

    const plan = await explainTenantLogRead(suite.database, tenant)
    expect(plan.indexUsed).toBe(true)
    expect(plan.indexes).toContain('events_tenant_position_idx')
    expect(plan.nodes).not.toMatch(/Seq Scan/)
    // Exactly the tenant's three rows were read from events, and none was read and then thrown away.
    expect(plan.rowsRead).toBe(3)
    expect(plan.rowsRemoved).toBe(0)
    // A handful of index and heap pages, against the hundreds a scan would touch.
    expect(tablePages).toBeGreaterThan(100)
    expect(plan.sharedBlocks).toBeLessThan(20)
    expect((await suite.store.readTenantLog(tenant)).map((event) => event.streamName.startsWith(`tenant_${tenant}-`))).toEqual([true, true, true])
  })

  it('keeps notifying after the listening connection is dropped', async () => {
    let calls = 0
    const unsubscribe = await suite.store.onAppend(() => (calls += 1))
    const listenerPid = async () => {
      const { rows } = await suite.database.pool.query<{ pid: number }>(
        "select pid from pg_stat_activity where datname = current_database() and query ilike 'listen%'",
      )
      return rows[0]?.pid
    }
    try {
      const dropped = await listenerPid()
      expect(dropped).toBeDefined()
      await suite.database.pool.query('select pg_terminate_backend($1)', [dropped])
      await vi.waitFor(async () => expect([undefined, dropped]).not.toContain(await listenerPid()), { timeout: 10_000, interval: 50 })

      const before = calls
      await suite.store.appendToStream(freshStream(), newEvents(1), { expectedRevision: 'no_stream' })
      await vi.waitFor(() => expect(calls).toBeGreaterThan(before), { timeout: 10_000, interval: 20 })
    } finally {
      await unsubscribe()
    }
  })

  it('refuses bad read arguments with RangeError before touching the database', async () => {
    await expect(suite.store.readAll({ maxCount: -1 })).rejects.toThrow(RangeError)
    await expect(suite.store.readTenantLog('Bad-Tenant')).rejects.toThrow(/tenant ID/)
    await expect(suite.store.readStream('')).rejects.toThrow(RangeError)
  })

  it('refuses a NUL character (which jsonb cannot suite.store) as bad input, but stores the text \\u0000', async () => {
    const stream = freshStream()
    const [event] = newEvents(1)
    await expect(suite.store.appendToStream(stream, [{ ...event!, data: { text: 'a\u0000b' } }], { expectedRevision: 'no_stream' })).rejects.toThrow(
      /NUL character/,
    )
    expect(await suite.store.readStream(stream)).toEqual([])
    await suite.store.appendToStream(stream, [{ ...event!, data: { text: 'a\\u0000b' } }], { expectedRevision: 'no_stream' })
    expect((await suite.store.readStream(stream))[0]!.data).toEqual({ text: 'a\\u0000b' })
  })

  it('wraps a lost database as EventStoreUnavailableError, and names the masked URL when it cannot connect', async () => {
    const closedDatabase = await freshPostgresDatabase()
    const closedStore = new PostgresEventStore(closedDatabase)
    await closedDatabase.close()
    await expect(closedStore.readAll()).rejects.toBeInstanceOf(EventStoreUnavailableError)

    const url = 'postgres://annalist:s3cret@127.0.0.1:1/nowhere'
    const failure = await openDatabase({ url }).catch((error: unknown) => error)
    expect(failure).toBeInstanceOf(DatabaseConnectionError)
    expect((failure as Error).message).toContain('postgres://annalist:***@127.0.0.1:1/nowhere')
    expect((failure as Error).message).not.toContain('s3cret')
  })
})
