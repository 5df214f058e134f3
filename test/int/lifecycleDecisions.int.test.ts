import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { Historian } from '../../historian/historian'
import { LifecycleDecisionError } from '../../historian/lifecycle/lifecycleErrors'
import { listLifecycleDecisions, reconcileLifecycle, recordLifecycleDecision, type DecisionRequest } from '../../historian/lifecycle/lifecycleService'
import { retentionAsOf } from '../../historian/lifecycle/retentionAsOf'
import type { LifecycleDecision } from '../../historian/events'
import type { EventStore } from '../../historian/port'
import { complianceStreamName, taskStreamName } from '../../historian/streams'
import { defaultProjections } from '../../projections/defaultProjections'
import { sweepRetention } from '../../projections/lifecycleSweep'
import { rebuildAndCompare } from '../../projections/rebuild'
import { ProjectionRunner } from '../../projections/runner'
import { DATABASE_BACKENDS, historianPerTest } from '../support/databases'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'

const TENANT = 'acme'
const TASKS = ['task-a', 'task-b'] as const

/** Every table of the default read models that keeps rows per task, and how many rows the task has there. */
const TASK_TABLES = ['audit_timeline', 'task_summary', 'analytics_model_invocations', 'analytics_tool_calls', 'analytics_step_failures']

describe.each(DATABASE_BACKENDS)('lifecycle decisions on $backend', ({ open }) => {
  const fixture = historianPerTest(open)
  const catchUp = () => new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: defaultProjections() }).catchUp()
  const compare = (store: EventStore = fixture.store) => rebuildAndCompare(store, fixture.database.pool, defaultProjections())
  const request = (decision: LifecycleDecision, taskId = 'task-a'): DecisionRequest => ({ tenantId: TENANT, taskId, decision, decidedBy: 'dpo@example.test', reason: 'ticket C-42' })

  /** Two tasks of six events each (a tool failure included), projected. */
  async function seed(): Promise<void> {
    for (const taskId of TASKS) {
      const events = new TaskEventFactory(TENANT, taskId)
      await appendTaskEvents(fixture.historian, TENANT, taskId, [events.received(), events.routingInvoked(), events.planCreated(), events.toolExecuted(), events.toolFailed(), events.synthesisInvoked()])
    }
    await catchUp()
  }

  async function rowsOfTask(taskId: string): Promise<number> {
    let rows = 0
    for (const table of TASK_TABLES) {
      const { rows: counted } = await fixture.database.pool.query<{ n: number }>(`select count(*)::int as n from ${table} where tenant_id = $1 and task_id = $2`, [TENANT, taskId])
      rows += counted[0]!.n
    }
    return rows
  }

  it('records a decision once, with its stable ID, however often the command is retried', async () => {
    await seed()
    const first = await recordLifecycleDecision(fixture.historian, request({ kind: 'retain', maxCount: 3 }))
    const again = await recordLifecycleDecision(fixture.historian, request({ kind: 'retain', maxCount: 3 }))
    expect(first.recorded).toBe(true)
    expect(first.applied).toEqual([taskStreamName(TENANT, 'task-a')])
    expect(again).toEqual({ decision: first.decision, recorded: false, applied: [] })
    const stream = await fixture.store.readStream(complianceStreamName(TENANT))
    expect(stream.map((event) => event.eventId)).toEqual([first.decision.decisionId])
    expect(stream[0]!.metadata).toMatchObject({ tenantId: TENANT, taskId: 'task-a', activityId: 'lifecycle-decision', integrity: expect.anything() })
    expect(await listLifecycleDecisions(fixture.historian, TENANT)).toMatchObject([{ data: { decision: { kind: 'retain', maxCount: 3 }, decidedBy: 'dpo@example.test', streamRevision: 5 } }])
  })

  const kinds: [string, LifecycleDecision, number][] = [
    ['soft delete', { kind: 'soft_delete' }, 0],
    ['tombstone', { kind: 'tombstone' }, 0],
    ['truncate', { kind: 'truncate', before: 4 }, 2],
    ['retain maxCount', { kind: 'retain', maxCount: 2 }, 2],
  ]
  it.each(kinds)('after a %s decision the read models drop what a rebuild no longer holds, and equal it', async (_name, decision, eventsLeft) => {
    await seed()
    const before = await rowsOfTask('task-a')
    const untouched = await rowsOfTask('task-b')
    expect((await compare()).matches).toBe(true)

    await recordLifecycleDecision(fixture.historian, request(decision))
    await catchUp()

    expect(await compare()).toMatchObject({ matches: true, differences: [] })
    expect(await rowsOfTask('task-a')).toBeLessThan(before)
    expect(await rowsOfTask('task-b')).toBe(untouched)
    const trail = await fixture.database.pool.query('select position from audit_timeline where task_id = $1', ['task-a'])
    expect(trail.rowCount).toBe(eventsLeft)
    expect((await reconcileLifecycle(fixture.store, { heal: false })).streams).toEqual([{ stream: taskStreamName(TENANT, 'task-a') }])
  })

  it('keeps events appended after a soft delete, and still equals a rebuild', async () => {
    await seed()
    await recordLifecycleDecision(fixture.historian, request({ kind: 'soft_delete' }))
    const events = new TaskEventFactory(TENANT, 'task-a', new Date('2026-02-01T00:00:00Z'))
    // Written again as a new stream would be (a soft-deleted stream takes 'no_stream'), with an event ID of its own.
    await fixture.historian.appendToTask(TENANT, 'task-a', [{ ...events.received('again'), eventId: randomUUID() }], { revision: 'no_stream' })
    await catchUp()
    expect(await compare()).toMatchObject({ matches: true })
    expect((await fixture.database.pool.query('select stream_revision from audit_timeline where task_id = $1', ['task-a'])).rows).toEqual([{ stream_revision: '6' }])
    // The delete is no longer pending (the stream was written again), which the check accepts.
    expect((await reconcileLifecycle(fixture.store, { heal: false })).streams).toEqual([{ stream: taskStreamName(TENANT, 'task-a') }])
  })

  it('heals a crash between recording a decision and applying it, in the store and in the read models', async () => {
    await seed()
    // A store that dies right after the decision is appended: every lifecycle write fails.
    const crashing: EventStore = Object.assign(Object.create(fixture.store) as EventStore, {
      setStreamMetadata: () => Promise.reject(new Error('killed before applying')),
      deleteStream: () => Promise.reject(new Error('killed before applying')),
    })
    await expect(recordLifecycleDecision(new Historian(crashing, { keyRing: fixture.keyRing }), request({ kind: 'truncate', before: 3 }))).rejects.toThrow(/killed/)
    const target = taskStreamName(TENANT, 'task-a')
    expect(await fixture.store.readStream(complianceStreamName(TENANT))).toHaveLength(1)
    expect(await fixture.store.getStreamMetadata(target)).toMatchObject({ metadataRevision: 'no_metadata' })
    expect((await reconcileLifecycle(fixture.store, { heal: false })).streams).toEqual([{ stream: target, drift: 'the store has no rules, the decisions truncateBefore 3' }])

    // The projections follow the recorded decision even before the store applied it ...
    await catchUp()
    const healed = await reconcileLifecycle(fixture.store, { heal: true })
    expect(healed.healed).toEqual([target])
    expect((await fixture.store.getStreamMetadata(target)).metadata).toEqual({ truncateBefore: 3n })
    expect((await reconcileLifecycle(fixture.store, { heal: false })).streams).toEqual([{ stream: target }])
    // ... so after the sync they equal a rebuild.
    expect(await compare()).toMatchObject({ matches: true })

    // Retrying the command records nothing new and applies nothing more.
    const retried = await recordLifecycleDecision(fixture.historian, request({ kind: 'truncate', before: 3 }))
    expect(retried).toMatchObject({ recorded: false, applied: [] })
  })

  it('detects a stream_metadata row written by SQL with no decision behind it, and one changed by SQL, and heals only the decided one', async () => {
    await seed()
    await recordLifecycleDecision(fixture.historian, request({ kind: 'retain', maxCount: 4 }))
    const [decided, forged] = [taskStreamName(TENANT, 'task-a'), taskStreamName(TENANT, 'task-b')]
    await fixture.database.pool.query(`insert into stream_metadata (stream_name, max_count) values ($1, 1)`, [forged])
    await fixture.database.pool.query(`update stream_metadata set max_count = 1 where stream_name = $1`, [decided])
    const report = await reconcileLifecycle(fixture.store, { heal: false })
    expect(report.listedStore).toBe(true)
    expect(report.streams).toEqual([
      { stream: decided, drift: 'the store has maxCount 1, the decisions maxCount 4' },
      { stream: forged, drift: 'the store has maxCount 1, the decisions no rules (no decision recorded for it)' },
    ])
    const synced = await reconcileLifecycle(fixture.store, { heal: true })
    expect(synced.healed).toEqual([decided])
    expect(synced.streams.filter((one) => one.drift !== undefined).map((one) => one.stream)).toEqual([forged])

    // A tombstone no decision made is reported, and no sync can undo it.
    await fixture.store.tombstoneStream(decided, { expectedRevision: 'any' })
    const tombstoned = await reconcileLifecycle(fixture.store, { heal: true })
    expect(tombstoned.healed).toEqual([])
    expect(tombstoned.streams).toContainEqual({ stream: decided, drift: 'the store has it tombstoned, but no recorded decision tombstones it' })
  })

  it('decides about a stream whose events every earlier decision hides, against the revision those decisions knew', async () => {
    await seed()
    await recordLifecycleDecision(fixture.historian, request({ kind: 'truncate', before: 100 }))
    expect(await recordLifecycleDecision(fixture.historian, request({ kind: 'soft_delete' }))).toMatchObject({ recorded: true, decision: { streamRevision: 5 } })
    // Retried after the delete hid the stream entirely: the same decision, so nothing new.
    expect(await recordLifecycleDecision(fixture.historian, request({ kind: 'soft_delete' }))).toMatchObject({ recorded: false })
    expect(await recordLifecycleDecision(fixture.historian, request({ kind: 'tombstone' }))).toMatchObject({ recorded: true, decision: { streamRevision: 5 } })
    await catchUp()
    expect(await compare()).toMatchObject({ matches: true })
    expect(await rowsOfTask('task-a')).toBe(0)
    expect((await reconcileLifecycle(fixture.store, { heal: false })).streams).toEqual([{ stream: taskStreamName(TENANT, 'task-a') }])
  })

  it('refuses what cannot be decided, and records nothing', async () => {
    await seed()
    await expect(recordLifecycleDecision(fixture.historian, request({ kind: 'soft_delete' }, 'never-written'))).rejects.toThrow(LifecycleDecisionError)
    await recordLifecycleDecision(fixture.historian, request({ kind: 'truncate', before: 3 }))
    await expect(recordLifecycleDecision(fixture.historian, request({ kind: 'truncate', before: 2 }))).rejects.toThrow(/would show events below 3 again/)
    await recordLifecycleDecision(fixture.historian, request({ kind: 'tombstone' }))
    await expect(recordLifecycleDecision(fixture.historian, request({ kind: 'retain', maxCount: 9 }))).rejects.toThrow(/tombstoned it/)
    expect(await fixture.store.readStream(complianceStreamName(TENANT))).toHaveLength(2)
  })

  it('sweeps maxAge at a given time: the swept read models equal a rebuild as of that time', async () => {
    await seed()
    await recordLifecycleDecision(fixture.historian, request({ kind: 'retain', maxAgeSeconds: 3_600 }))
    await catchUp()
    const before = await rowsOfTask('task-a')
    const inTwoHours = new Date(Date.now() + 2 * 3_600_000)
    expect((await compare()).matches).toBe(true)
    expect((await compare(retentionAsOf(fixture.store, inTwoHours))).matches).toBe(false)

    const report = await sweepRetention(fixture.store, fixture.database.pool, defaultProjections(), inTwoHours)
    expect(report.streams).toEqual([taskStreamName(TENANT, 'task-a')])
    expect(await rowsOfTask('task-a')).toBe(0)
    expect(before).toBeGreaterThan(0)
    expect(await compare(retentionAsOf(fixture.store, inTwoHours))).toMatchObject({ matches: true, differences: [] })

    // A sweep at a time when nothing has expired yet changes nothing against a rebuild as of then.
    await sweepRetention(fixture.store, fixture.database.pool, defaultProjections(), new Date())
    expect(await rowsOfTask('task-a')).toBe(before)
    expect(await compare()).toMatchObject({ matches: true })
  })

  it('sweeps maxCount after new appends pushed older events out', async () => {
    await seed()
    await recordLifecycleDecision(fixture.historian, request({ kind: 'retain', maxCount: 3 }))
    await catchUp()
    const events = new TaskEventFactory(TENANT, 'task-a', new Date('2026-03-01T00:00:00Z'))
    await appendTaskEvents(fixture.historian, TENANT, 'task-a', [events.failed('complete', 'LATE')])
    await catchUp()
    expect((await compare()).matches).toBe(false)
    await sweepRetention(fixture.store, fixture.database.pool, defaultProjections(), new Date())
    expect(await compare()).toMatchObject({ matches: true })
    expect((await fixture.database.pool.query('select 1 from audit_timeline where task_id = $1', ['task-a'])).rowCount).toBe(3)
  })
})
