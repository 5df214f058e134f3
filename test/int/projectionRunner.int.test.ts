import type pg from 'pg'
import { describe, expect, it } from 'vitest'
import { Historian } from '../../historian/historian'
import type { EventStore } from '../../historian/port'
import { auditTimelineProjection } from '../../projections/auditTimeline/projection'
import { auditTrail } from '../../projections/auditTimeline/query'
import { listDeadLetters } from '../../projections/projectionDeadLetters'
import type { Projection } from '../../projections/projection'
import { rebuildAndCompare } from '../../projections/rebuild'
import { ProjectionRunner, ProjectionTimeoutError, readCheckpoint, type ProjectionProgress } from '../../projections/runner'
import { taskSummaryProjection } from '../../projections/taskSummary/projection'
import { taskSummaries } from '../../projections/taskSummary/query'
import { DATABASE_BACKENDS, freshPostgresDatabase, historianPerTest } from '../support/databases'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'
import { waitUntil } from '../support/waitUntil'

const projections = () => [auditTimelineProjection(), taskSummaryProjection()]

/** Appends `count` events of a task that runs its tools (received, routing, plan, then tool calls). */
async function appendTaskRun(historian: Historian, tenantId: string, taskId: string, count = 4): Promise<bigint> {
  const f = new TaskEventFactory(tenantId, taskId)
  const events = [f.received(), f.routingInvoked(), f.planCreated(['search'])]
  for (let i = events.length; i < count; i++) events.push(f.toolExecuted(`call-${i}`, 'search'))
  return (await appendTaskEvents(historian, tenantId, taskId, events.slice(0, count))).position
}

/** Writes a row straight into the event log, bypassing the Historian's validation: how a poison event gets in. */
async function insertRawEvent(pool: pg.Pool, stream: string, type: string, data: unknown): Promise<bigint> {
  const result = await pool.query<{ position: string }>(
    `insert into events (stream_name, stream_revision, event_id, event_type, data, metadata)
     values ($1, (select coalesce(max(stream_revision) + 1, 0) from events where stream_name = $1), gen_random_uuid(), $2, $3, $4)
     returning position`,
    [stream, type, JSON.stringify(data), JSON.stringify({ schemaVersion: 1, tenantId: 'acme', taskId: 'task-a' })],
  )
  return BigInt(result.rows[0]!.position)
}

/** The store as is, except that its append notifications are counted, or never delivered (a store that cannot notify). */
function observedStore(store: EventStore, notifications: { count: number }, deliver: boolean): EventStore {
  return {
    kind: store.kind,
    appendToStream: (stream, events, options) => store.appendToStream(stream, events, options),
    readStream: (stream, options) => store.readStream(stream, options),
    readTenantLog: (tenantId, options) => store.readTenantLog(tenantId, options),
    readTenantHead: (tenantId) => store.readTenantHead(tenantId),
    readEventType: (type, options) => store.readEventType(type, options),
    readAll: (options) => store.readAll(options),
    deleteStream: (stream, options) => store.deleteStream(stream, options),
    tombstoneStream: (stream, options) => store.tombstoneStream(stream, options),
    setStreamMetadata: (stream, metadata, options) => store.setStreamMetadata(stream, metadata, options),
    getStreamMetadata: (stream) => store.getStreamMetadata(stream),
    listLifecycleStreams: () => store.listLifecycleStreams(),
    onAppend: (listener) =>
      deliver
        ? store.onAppend(() => {
            notifications.count++
            listener()
          })
        : Promise.resolve(async () => undefined),
    close: () => store.close(),
  }
}

async function rowCount(pool: pg.Pool, table: string): Promise<number> {
  const result = await pool.query<{ count: string }>(`select count(*) as count from ${table}`)
  return Number(result.rows[0]!.count)
}

describe.each(DATABASE_BACKENDS)('projection runner on $backend', ({ open }) => {
  const fixture = historianPerTest(open)

  it('records poison events as dead letters, moves its checkpoint past them and keeps applying later events', async () => {
    await appendTaskRun(fixture.historian, 'acme', 'task-a', 3)
    const unknown = await insertRawEvent(fixture.database.pool, 'tenant_acme-task-a', 'MysteryHappened', { anything: true })
    const malformed = await insertRawEvent(fixture.database.pool, 'tenant_acme-task-a', 'ToolCallExecuted', { toolName: '' })
    const f = new TaskEventFactory('acme', 'task-a')
    const end = (await appendTaskEvents(fixture.historian, 'acme', 'task-a', [f.toolExecuted('call-9', 'search'), f.synthesisInvoked()])).position

    const progress: ProjectionProgress[] = []
    const runner = new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: projections(), batchSize: 3, onProgress: (p) => progress.push(p) })
    expect(await runner.catchUp()).toBe(end)

    const letters = await listDeadLetters(fixture.database.pool)
    expect(letters.map((letter) => [letter.projection, letter.position, letter.eventType])).toEqual([
      ['audit_timeline', unknown, 'MysteryHappened'],
      ['task_summary', unknown, 'MysteryHappened'],
      ['audit_timeline', malformed, 'ToolCallExecuted'],
      ['task_summary', malformed, 'ToolCallExecuted'],
    ])
    expect(letters[0]!.error).toMatch(/^UnknownEventTypeError: unknown event type MysteryHappened/)
    expect(letters[2]!.error).toMatch(/^EventSchemaError: event ToolCallExecuted fails its schema/)
    expect(letters[0]).toMatchObject({ streamName: 'tenant_acme-task-a', eventId: expect.stringMatching(/^[0-9a-f-]{36}$/) })
    expect((await listDeadLetters(fixture.database.pool, 'task_summary')).map((letter) => letter.position)).toEqual([unknown, malformed])

    // Nothing silently dropped: every event is either applied or a dead letter, and the checkpoints are past them all.
    for (const name of ['audit_timeline', 'task_summary']) {
      expect(await readCheckpoint(fixture.database.pool, name)).toBe(end)
      const mine = progress.filter((p) => p.projection === name)
      expect(mine.reduce((sum, p) => sum + p.applied, 0)).toBe(5)
      expect(mine.reduce((sum, p) => sum + p.deadLettered, 0)).toBe(2)
    }
    const trail = await auditTrail(fixture.database.pool, { tenantId: 'acme' })
    expect(trail.map((entry) => entry.eventType)).toEqual(['AgentTaskReceived', 'RoutingModelInvoked', 'PlanCreated', 'ToolCallExecuted', 'SynthesisModelInvoked'])
    const [summary] = await taskSummaries(fixture.database.pool, { tenantId: 'acme' })
    expect(summary).toMatchObject({ eventsApplied: 5, toolCallsSucceeded: 1, currentStep: 'synthesize', lastPosition: end })

    // A rebuild fails on the same events, so the live models (with their dead letters) still match it.
    expect(await rebuildAndCompare(fixture.store, fixture.database.pool, projections())).toMatchObject({ matches: true, differences: [] })
    await fixture.database.pool.query(`delete from projection_dead_letters where projection = 'task_summary' and position = $1`, [unknown.toString()])
    const missing = await rebuildAndCompare(fixture.store, fixture.database.pool, projections())
    expect(missing.differences).toEqual([
      expect.stringContaining(`task_summary dead letter at position ${unknown}: the rebuild failed (UnknownEventTypeError`),
    ])
  })

  it('rolls back what a failing apply wrote before it threw, and dead-letters only that event', async () => {
    await fixture.database.pool.query('create table probe_rows (position bigint primary key, event_type text not null)')
    const probe: Projection<'probe_rows'> = {
      name: 'probe',
      tables: ['probe_rows'],
      async apply(client, stored, tables) {
        await client.query(`insert into ${tables.probe_rows} (position, event_type) values ($1, $2)`, [stored.position.toString(), stored.event.type])
        if (stored.event.type === 'PlanCreated') throw new Error('probe cannot digest plans')
      },
    }
    const end = await appendTaskRun(fixture.historian, 'acme', 'task-a', 5)
    await new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: [probe, auditTimelineProjection()] }).catchUp()

    const rows = await fixture.database.pool.query<{ event_type: string }>('select event_type from probe_rows order by position')
    expect(rows.rows.map((row) => row.event_type)).toEqual(['AgentTaskReceived', 'RoutingModelInvoked', 'ToolCallExecuted', 'ToolCallExecuted'])
    const letters = await listDeadLetters(fixture.database.pool)
    expect(letters).toHaveLength(1)
    expect(letters[0]).toMatchObject({ projection: 'probe', eventType: 'PlanCreated', error: 'Error: probe cannot digest plans', position: end - 2n })
    expect(await rowCount(fixture.database.pool, 'audit_timeline')).toBe(5)
    expect(await readCheckpoint(fixture.database.pool, 'probe')).toBe(end)
  })

  it('commits a batch with its checkpoint or not at all', async () => {
    await appendTaskRun(fixture.historian, 'acme', 'task-a', 3)
    await insertRawEvent(fixture.database.pool, 'tenant_acme-task-a', 'MysteryHappened', {})
    const f = new TaskEventFactory('acme', 'task-a')
    const end = (await appendTaskEvents(fixture.historian, 'acme', 'task-a', [f.toolExecuted('call-9', 'search')])).position

    // The poison event's dead letter cannot be written, so the transaction fails after three events were applied.
    await fixture.database.pool.query('alter table projection_dead_letters rename to projection_dead_letters_away')
    const runner = new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: projections() })
    await expect(runner.catchUp()).rejects.toThrow(/projection_dead_letters/)
    expect(await rowCount(fixture.database.pool, 'audit_timeline')).toBe(0)
    expect(await rowCount(fixture.database.pool, 'task_summary')).toBe(0)
    expect(await rowCount(fixture.database.pool, 'projection_checkpoints')).toBe(0)

    await fixture.database.pool.query('alter table projection_dead_letters_away rename to projection_dead_letters')
    expect(await runner.catchUp()).toBe(end)
    expect(await rowCount(fixture.database.pool, 'audit_timeline')).toBe(4)
    expect(await rowCount(fixture.database.pool, 'projection_dead_letters')).toBe(2)
    expect(await rebuildAndCompare(fixture.store, fixture.database.pool, projections())).toMatchObject({ matches: true })
  })

  it('wakes on an append notification instead of waiting for its poll', async () => {
    const notifications = { count: 0 }
    const runner = new ProjectionRunner({ store: observedStore(fixture.store, notifications, true), pool: fixture.database.pool, projections: projections(), pollIntervalMs: 30_000 })
    const first = await appendTaskRun(fixture.historian, 'acme', 'task-a')
    const running = runner.start()
    await runner.waitForPosition(first, 10_000) // the first pass runs at start

    const later = await appendTaskRun(fixture.historian, 'acme', 'task-b')
    // The next poll is 30 s away and the wait gives up after 10 s: only the notification can get the runner there.
    await runner.waitForPosition(later, 10_000)
    expect(notifications.count).toBeGreaterThan(0)
    expect(await rowCount(fixture.database.pool, 'audit_timeline')).toBe(8)

    await runner.stop()
    await expect(running).resolves.toBeUndefined()
  })

  it('falls back to polling when the store cannot notify', async () => {
    const notifications = { count: 0 }
    const runner = new ProjectionRunner({ store: observedStore(fixture.store, notifications, false), pool: fixture.database.pool, projections: projections(), pollIntervalMs: 50 })
    const running = runner.start()
    const end = await appendTaskRun(fixture.historian, 'acme', 'task-a')
    await runner.waitForPosition(end, 10_000)
    expect(notifications.count).toBe(0)
    await runner.stop()
    await running
  })

  it('waitForPosition times out naming the lagging projections when nothing runs them', async () => {
    const end = await appendTaskRun(fixture.historian, 'acme', 'task-a')
    const runner = new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: projections() })
    const error = await runner.waitForPosition(end, 200).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ProjectionTimeoutError)
    expect((error as ProjectionTimeoutError).checkpoints).toEqual({ audit_timeline: 0n, task_summary: 0n })
    expect(await runner.catchUp()).toBe(end)
    await runner.waitForPosition(end, 200)
  })

  it('keeps a separate checkpoint per projection', async () => {
    const first = await appendTaskRun(fixture.historian, 'acme', 'task-a')
    await new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: [auditTimelineProjection()] }).catchUp()
    const second = await appendTaskRun(fixture.historian, 'acme', 'task-b')
    expect(await readCheckpoint(fixture.database.pool, 'audit_timeline')).toBe(first)
    expect(await readCheckpoint(fixture.database.pool, 'task_summary')).toBe(0n)

    expect(await new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: projections() }).catchUp()).toBe(second)
    expect(await readCheckpoint(fixture.database.pool, 'task_summary')).toBe(second)
    expect(await rowCount(fixture.database.pool, 'audit_timeline')).toBe(8)
  })
})

describe('projection runner on the postgres server, with real connection failures and competition', () => {
  const fixture = historianPerTest(freshPostgresDatabase)

  /** Applies like `projection`, but kills its own fixture.database connection on the n-th event, mid-transaction. */
  function dyingOn<T extends string>(projection: Projection<T>, n: number): Projection<T> {
    let calls = 0
    return {
      name: projection.name,
      tables: projection.tables,
      async apply(client, stored, tables) {
        await projection.apply(client, stored, tables)
        if (++calls % n === 0) await client.query('select pg_terminate_backend(pg_backend_pid())')
      },
    }
  }

  it('leaves nothing of a batch whose connection dies mid-transaction, then recovers', async () => {
    const end = await appendTaskRun(fixture.historian, 'acme', 'task-a', 6)
    await expect(new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: [dyingOn(auditTimelineProjection(), 4)] }).catchUp()).rejects.toThrow()
    expect(await rowCount(fixture.database.pool, 'audit_timeline')).toBe(0)
    expect(await readCheckpoint(fixture.database.pool, 'audit_timeline')).toBe(0n)

    expect(await new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: projections() }).catchUp()).toBe(end)
    expect(await rowCount(fixture.database.pool, 'audit_timeline')).toBe(6)
    expect(await rebuildAndCompare(fixture.store, fixture.database.pool, projections())).toMatchObject({ matches: true })
  })

  it("does not let one projection's failing batches stall another's checkpoint", async () => {
    const end = await appendTaskRun(fixture.historian, 'acme', 'task-a', 5)
    const errors: string[] = []
    const runner = new ProjectionRunner({
      store: fixture.store,
      pool: fixture.database.pool,
      projections: [dyingOn(taskSummaryProjection(), 1), auditTimelineProjection()],
      pollIntervalMs: 100,
      onError: (_error, where) => errors.push(where),
    })
    const running = runner.start()
    await waitUntil('audit_timeline at the end and two task_summary errors', async () => (await readCheckpoint(fixture.database.pool, 'audit_timeline')) === end && errors.length >= 2)
    await runner.stop()
    await running
    expect(new Set(errors)).toEqual(new Set(['task_summary']))
    expect(await readCheckpoint(fixture.database.pool, 'task_summary')).toBe(0n)
    expect(await rowCount(fixture.database.pool, 'task_summary')).toBe(0)
    expect(await rowCount(fixture.database.pool, 'audit_timeline')).toBe(5)
  })

  it('compares a rebuild with live models that a running runner keeps moving', async () => {
    const runner = new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: projections(), batchSize: 1 })
    const running = runner.start()
    const appending = (async () => {
      for (let i = 0; i < 6; i++) await appendTaskRun(fixture.historian, 'acme', `task-${i}`, 4)
    })()
    const comparisons = [await rebuildAndCompare(fixture.store, fixture.database.pool, projections(), { batchSize: 2 })]
    await appending
    comparisons.push(await rebuildAndCompare(fixture.store, fixture.database.pool, projections(), { batchSize: 2 }))
    await runner.waitForPosition((await fixture.store.readAll({})).at(-1)!.position, 10_000)
    await runner.stop()
    await running
    comparisons.push(await rebuildAndCompare(fixture.store, fixture.database.pool, projections()))
    for (const comparison of comparisons) expect(comparison).toMatchObject({ matches: true, differences: [] })
    expect(comparisons.at(-1)!.positions).toEqual({ audit_timeline: 24n, task_summary: 24n })
  })

  it('lets competing runners share a projection without applying anything twice', async () => {
    await appendTaskRun(fixture.historian, 'acme', 'task-a', 7)
    await appendTaskRun(fixture.historian, 'acme', 'task-b', 7)
    const end = await appendTaskRun(fixture.historian, 'globex', 'task-c', 6)
    const competitor = () => new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: projections(), batchSize: 2 })
    const reached = await Promise.all([competitor().catchUp(), competitor().catchUp(), competitor().catchUp()])
    expect(reached).toEqual([end, end, end])

    expect(await rowCount(fixture.database.pool, 'audit_timeline')).toBe(20)
    const summed = await fixture.database.pool.query<{ total: string }>('select sum(events_applied) as total from task_summary')
    expect(Number(summed.rows[0]!.total)).toBe(20)
    expect(await rebuildAndCompare(fixture.store, fixture.database.pool, projections())).toMatchObject({ matches: true })
  })
})
