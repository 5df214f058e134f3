import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { auditTrail } from '../../projections/auditTimeline/query'
import { defaultProjections } from '../../projections/defaultProjections'
import { listDeadLetters } from '../../projections/projectionDeadLetters'
import { rebuildAndCompare, rebuildProjection, type RebuildProgress } from '../../projections/rebuild'
import { ProjectionRunner } from '../../projections/runner'
import { DATABASE_BACKENDS, freshPostgresDatabase, historianPerTest } from '../support/databases'
import { appendTaskRuns } from '../../dev/fixtures/taskRuns'
import { waitUntil } from '../support/waitUntil'

interface Shape {
  indexes: string[]
  constraints: string[]
}

/** Every index (name and definition) and constraint (name and definition) of the projection tables: what a swap must keep. */
async function schemaShape(pool: pg.Pool, tables: readonly string[]): Promise<Shape> {
  const indexes = await pool.query<{ line: string }>(
    `select indexname || ': ' || indexdef as line from pg_indexes where tablename = any($1::text[]) order by 1`,
    [tables],
  )
  const constraints = await pool.query<{ line: string }>(
    `select conrelid::regclass::text || '.' || conname || ': ' || pg_get_constraintdef(oid) as line
       from pg_constraint where conrelid in (select oid from pg_class where relname = any($1::text[])) order by 1`,
    [tables],
  )
  return { indexes: indexes.rows.map((row) => row.line), constraints: constraints.rows.map((row) => row.line) }
}

async function leftoverTables(pool: pg.Pool): Promise<string[]> {
  const result = await pool.query<{ name: string }>(`select tablename as name from pg_tables where tablename ~ '_(rebuild|retired)_' order by 1`)
  return result.rows.map((row) => row.name)
}

async function count(pool: pg.Pool | pg.Client, table: string): Promise<number> {
  return Number((await pool.query<{ n: string }>(`select count(*) as n from ${table}`)).rows[0]!.n)
}

describe.each(DATABASE_BACKENDS)('rebuildProjection on $backend', ({ open }) => {
  const fixture = historianPerTest(open)
  const projections = defaultProjections()
  const tables = projections.flatMap((projection) => projection.tables)

  it('swaps in fresh tables equal to the incremental model, with the same indexes and constraints, and leaves nothing behind', async () => {
    const end = await appendTaskRuns(fixture.historian, { tenants: 3, events: 140 })
    await new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections }).catchUp()
    const before = await schemaShape(fixture.database.pool, tables)
    const counts = Object.fromEntries(await Promise.all(tables.map(async (table) => [table, await count(fixture.database.pool, table)] as const)))
    expect(before.indexes.length).toBeGreaterThanOrEqual(tables.length * 2)

    for (const projection of projections) {
      const progress: RebuildProgress[] = []
      const result = await rebuildProjection(fixture.store, fixture.database.pool, projection, { batchSize: 30, onProgress: (p) => progress.push(p) })
      expect(result).toMatchObject({ projection: projection.name, position: end, events: 140, matchedIncremental: true, differences: [], deadLetters: [] })
      for (const table of projection.tables) expect(result.rows[table]).toBe(counts[table])
      expect(progress.map((p) => p.events)).toEqual([30, 60, 90, 120, 140])
      expect(progress.at(-1)).toMatchObject({ position: end, target: end })
    }
    expect(await schemaShape(fixture.database.pool, tables)).toEqual(before)
    expect(await leftoverTables(fixture.database.pool)).toEqual([])
    expect(await rebuildAndCompare(fixture.store, fixture.database.pool, projections)).toMatchObject({ matches: true })
    // The swapped-in table still enforces its constraints.
    await expect(fixture.database.pool.query(`update task_summary set status = 'bogus'`)).rejects.toThrow(/task_summary_status_check/)
  })

  it('says when the incremental model differed, replaces it with the rebuild, and recomputes dead letters', async () => {
    await appendTaskRuns(fixture.historian, { tenants: 2, events: 28 })
    const runner = new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections })
    await runner.catchUp()
    await fixture.database.pool.query(`update task_summary set total_tokens = 1 where tenant_id = 'tenant0' and task_id = 'task-1'`)
    await fixture.database.pool.query(
      `insert into projection_dead_letters (projection, position, event_id, event_type, stream_name, error) values ('task_summary', 3, 'x', 'PlanCreated', 's', 'Error: bad day')`,
    )
    const summary = projections.find((projection) => projection.name === 'task_summary')!
    const result = await rebuildProjection(fixture.store, fixture.database.pool, summary)
    expect(result.matchedIncremental).toBe(false)
    expect(result.differences).toEqual([
      expect.stringMatching(/^task_summary \[tenant_id="tenant0", task_id="task-1"\]: total_tokens live 1 vs rebuilt 1010/),
      expect.stringContaining('task_summary dead letter at position 3: live failed (Error: bad day) but the rebuild applied it'),
    ])
    expect(result.resolvedDeadLetters).toEqual([3n])
    expect(await listDeadLetters(fixture.database.pool, 'task_summary')).toEqual([])
    const history = await fixture.database.pool.query(`select position, resolution, error from projection_dead_letter_history`)
    expect(history.rows).toEqual([{ position: '3', resolution: 'rebuilt', error: 'Error: bad day' }])
    expect(await rebuildAndCompare(fixture.store, fixture.database.pool, projections)).toMatchObject({ matches: true })
    // The live runner carries on on the swapped-in tables.
    const end = await appendTaskRuns(fixture.historian, { tenants: 1, events: 7, prefix: 'later' })
    expect(await runner.catchUp()).toBe(end)
    expect(await rebuildAndCompare(fixture.store, fixture.database.pool, projections)).toMatchObject({ matches: true })
  })

  it('takes in the batches a live runner commits while it rebuilds', async () => {
    await appendTaskRuns(fixture.historian, { tenants: 2, events: 70 })
    const runner = new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections, batchSize: 3, pollIntervalMs: 20 })
    const running = runner.start()
    const appending = appendTaskRuns(fixture.historian, { tenants: 2, events: 70, prefix: 'more' })
    const results = []
    for (const projection of projections) results.push(await rebuildProjection(fixture.store, fixture.database.pool, projection, { batchSize: 5 }))
    const end = await appending
    await runner.waitForPosition(end, 20_000)
    await runner.stop()
    await running
    for (const result of results) expect(result.matchedIncremental).toBe(true)
    expect(await rebuildAndCompare(fixture.store, fixture.database.pool, projections)).toMatchObject({ matches: true })
    expect(await count(fixture.database.pool, 'audit_timeline')).toBe(140)
  })

  it('keeps answering queries, completely, while it rebuilds and swaps', async () => {
    await appendTaskRuns(fixture.historian, { tenants: 3, events: 2_100 })
    await new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections, batchSize: 500 }).catchUp()
    const before = await count(fixture.database.pool, 'audit_timeline')
    const perTenant = (await auditTrail(fixture.database.pool, { tenantId: 'tenant1', limit: 10_000 })).length
    const audit = projections.find((projection) => projection.name === 'audit_timeline')!

    let done = false
    const answers: number[] = []
    const trails: number[] = []
    const querying = (async () => {
      while (!done) {
        answers.push(await count(fixture.database.pool, 'audit_timeline'))
        trails.push((await auditTrail(fixture.database.pool, { tenantId: 'tenant1', limit: 10_000 })).length)
      }
    })()
    const result = await rebuildProjection(fixture.store, fixture.database.pool, audit, { batchSize: 50 }).finally(() => {
      done = true
    })
    await querying
    answers.push(await count(fixture.database.pool, 'audit_timeline'))
    expect(result).toMatchObject({ matchedIncremental: true, rows: { audit_timeline: before } })
    expect(answers.length).toBeGreaterThan(5)
    expect(Math.min(...answers)).toBe(before)
    expect(new Set(trails)).toEqual(new Set([perTenant]))
    expect(await rebuildAndCompare(fixture.store, fixture.database.pool, [audit])).toMatchObject({ matches: true })
  })
})

describe('rebuild swap on the postgres server: a query waiting on the old table', () => {
  const fixture = historianPerTest(freshPostgresDatabase)

  it('reads the new table once the swap commits, without an error', async () => {
    await appendTaskRuns(fixture.historian, { tenants: 2, events: 28 })
    // A poison event gives the projection a dead letter whose row lock can hold the swap open after its renames.
    await fixture.database.pool.query(
      `insert into events (stream_name, stream_revision, event_id, event_type, data, metadata)
       values ('tenant_tenant0-odd', 0, gen_random_uuid(), 'MysteryHappened', '{}', '{}')`,
    )
    const projections = defaultProjections()
    await new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections }).catchUp()
    const audit = projections.find((projection) => projection.name === 'audit_timeline')!
    // A row only the old table has: the rebuild will not produce it, so the answer tells old and new apart.
    await fixture.database.pool.query(
      `insert into audit_timeline (position, tenant_sequence, tenant_id, task_id, stream_revision, event_id, event_type, occurred_at, recorded_at, workflow_id, run_id, activity_id, attempt, correlation_id, classification, summary)
       select 100000, 100000, tenant_id, task_id, stream_revision, event_id, event_type, occurred_at, recorded_at, workflow_id, run_id, activity_id, attempt, correlation_id, classification, summary
         from audit_timeline where position = 1`,
    )
    const oldCount = await count(fixture.database.pool, 'audit_timeline')

    const holder = new pg.Client({ connectionString: (fixture.database as unknown as { url: string }).url })
    const reader = new pg.Client({ connectionString: (fixture.database as unknown as { url: string }).url })
    await holder.connect()
    await reader.connect()
    try {
      await holder.query('begin')
      await holder.query(`select 1 from projection_dead_letters where projection = 'audit_timeline' for update`)
      const rebuilding = rebuildProjection(fixture.store, fixture.database.pool, audit)
      // Wait until the swap holds its rename lock and waits for the dead-letter row.
      await waitUntil('the rebuild to wait for the locked dead-letter row', async () => {
        const waiting = await fixture.database.pool.query(`select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like '%projection_dead_letters%for update%'`)
        return waiting.rowCount === 1
      })
      const readerPid = (await reader.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
      const answer = reader.query<{ n: string }>('select count(*) as n from audit_timeline')
      await waitUntil('the reader to wait for the rename lock', async () => {
        const waiting = await fixture.database.pool.query(`select 1 from pg_stat_activity where pid = $1 and wait_event_type = 'Lock'`, [readerPid])
        return waiting.rowCount === 1
      })
      await holder.query('commit')
      const result = await rebuilding
      expect(result.matchedIncremental).toBe(false)
      expect(Number((await answer).rows[0]!.n)).toBe(oldCount - 1)
      expect(result.rows.audit_timeline).toBe(oldCount - 1)
    } finally {
      await holder.end()
      await reader.end()
    }
  })
})
