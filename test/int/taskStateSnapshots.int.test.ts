import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { readEvent, UnknownEventTypeError, validateEvent } from '../../historian/events'
import type { PendingEvent } from '../../historian/historian'
import { loadTaskState, StateTargetOutOfRangeError, TaskNotFoundError, type LoadedTaskState, type StateTarget, type TaskStateDeps } from '../../historian/loadTaskState'
import type { EventStore, RecordedEvent } from '../../historian/port'
import { PostgresSnapshotStore } from '../../historian/snapshots/postgresSnapshotStore'
import type { SnapshotPolicy } from '../../historian/snapshots/snapshotPolicy'
import { InvalidIdentifierError, taskStreamName } from '../../historian/streams'
import { evolve, initialTaskState, TASK_STATE_VERSION, type TaskState } from '../../historian/taskState'
import { DATABASE_BACKENDS, randomSuffix } from '../support/databases'
import { TaskEventFactory } from '../../dev/fixtures/eventFactory'

/** One step of a generated task history; `evolve` folds any order, so any sequence is a valid stream. */
type Step =
  | { kind: 'received' | 'routed' | 'routeFailed' | 'synthFailed' | 'synthesized' | 'completed' | 'failed' }
  | { kind: 'planned'; tools: number }
  | { kind: 'toolOk' | 'toolFailed'; call: number }

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.constantFrom<Step>({ kind: 'received' }, { kind: 'routed' }, { kind: 'routeFailed' }, { kind: 'synthFailed' }, { kind: 'synthesized' }, { kind: 'completed' }, { kind: 'failed' }),
  fc.record({ kind: fc.constant('planned' as const), tools: fc.integer({ min: 0, max: 6 }) }),
  fc.record({ kind: fc.constantFrom('toolOk' as const, 'toolFailed' as const), call: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ kind: fc.constantFrom('toolOk' as const, 'toolFailed' as const), call: fc.integer({ min: 1, max: 6 }) }),
)

function eventsOf(factory: TaskEventFactory, steps: readonly Step[]): PendingEvent[] {
  return steps.map((step, n) => {
    switch (step.kind) {
      case 'received':
        return factory.received(`Task input number ${n}`)
      case 'routed':
        return factory.routingInvoked(['research', 'account', 'general'][n % 3], { inputTokens: n, outputTokens: 3, costUsd: 0.000013 * (n % 7) })
      case 'routeFailed':
        return factory.routingFailed(n % 2 === 0, 1 + (n % 4))
      case 'synthFailed':
        return factory.synthesisFailed(n % 3 !== 0)
      case 'synthesized':
        return factory.synthesisInvoked(`Answer ${n}: ${'lorem ipsum '.repeat(n % 40)}`, { inputTokens: 50 + n, outputTokens: n % 90, costUsd: 0.0001 * (n % 11) })
      case 'completed':
        return factory.completed({ totalTokens: n, totalCostUsd: 0.01, toolCallsSucceeded: 1, toolCallsFailed: 0 })
      case 'failed':
        return factory.failed('tools', 'TOOL_TIMEOUT')
      case 'planned':
        return factory.planCreated(Array.from({ length: step.tools }, (_, i) => `tool_${i + 1}`))
      case 'toolOk':
        return factory.toolExecuted(`call-${step.call}`, `tool_${step.call}`, n % 5 === 0 ? `outbox:${n}` : null)
      case 'toolFailed':
        return factory.toolFailed(`call-${step.call}`, `tool_${step.call}`)
    }
  })
}

/** Appends valid events in batches through the port (one transaction, so one recordedAt, per batch). */
async function appendInBatches(store: EventStore, stream: string, pending: readonly PendingEvent[], batchSizes: readonly number[]): Promise<void> {
  let next = 0
  let batch = 0
  while (next < pending.length) {
    const size = Math.max(1, batchSizes[batch++ % Math.max(1, batchSizes.length)] ?? 1)
    const events = pending.slice(next, next + size).map(({ eventId, event }) => {
      const valid = validateEvent(event)
      return { eventId, type: valid.type, data: valid.data, metadata: valid.metadata }
    })
    await store.appendToStream(stream, events, { expectedRevision: next === 0 ? 'no_stream' : BigInt(next - 1) })
    next += events.length
  }
}

/** The reference: every event read and folded from the first, with no snapshot anywhere. */
interface Reference {
  readonly events: readonly RecordedEvent[]
  readonly states: readonly TaskState[]
}

async function reference(store: EventStore, stream: string): Promise<Reference> {
  const events = await store.readStream(stream)
  const states: TaskState[] = []
  let state = initialTaskState
  for (const recorded of events) {
    state = evolve(state, readEvent(recorded))
    states.push(state)
  }
  return { events, states }
}

/** The reference answer at a target: the state after revision r, or after the longest prefix recorded at or before t. */
function referenceAt(ref: Reference, target: StateTarget): { state: TaskState; revision: bigint; recordedAt: Date } | 'out of range' {
  const index = 'revision' in target ? Number(target.revision) : ref.events.findIndex((event) => event.recordedAt.getTime() > target.timestamp.getTime()) - 1
  const end = 'timestamp' in target && index === -2 ? ref.events.length - 1 : index
  if (end < 0 || end >= ref.events.length) return 'out of range'
  return { state: ref.states[end]!, revision: ref.events[end]!.revision, recordedAt: ref.events[end]!.recordedAt }
}

async function expectSameAnswer(deps: TaskStateDeps, tenantId: string, taskId: string, ref: Reference, target: StateTarget): Promise<LoadedTaskState | undefined> {
  const expected = referenceAt(ref, target)
  const what = 'revision' in target ? `revision ${target.revision}` : target.timestamp.toISOString()
  if (expected === 'out of range') {
    await expect(loadTaskState(deps, tenantId, taskId, { at: target }), what).rejects.toThrow(StateTargetOutOfRangeError)
    return undefined
  }
  const loaded = await loadTaskState(deps, tenantId, taskId, { at: target })
  expect(loaded.state, what).toEqual(expected.state)
  expect(loaded.revision, what).toBe(expected.revision)
  expect(loaded.recordedAt.getTime(), what).toBe(expected.recordedAt.getTime())
  if (loaded.usedSnapshot) expect(loaded.eventsFolded, what).toBe(Number(loaded.revision - loaded.snapshotRevision!))
  return loaded
}

/** Sets each event's recordedAt to base + offsets[revision] ms: spread out, with ties and, if offsets go down, out of order. */
async function setRecordedAt(database: Database, stream: string, offsetsMs: readonly number[]): Promise<void> {
  await database.pool.query(
    `update events e set recorded_at = timestamptz '2026-03-01T08:00:00Z' + (o.offset_ms * interval '1 millisecond')
       from unnest($2::int[]) with ordinality as o(offset_ms, revision)
      where e.stream_name = $1 and e.stream_revision = o.revision - 1`,
    [stream, offsetsMs],
  )
}

/** The store as is, counting the events its stream reads return: proof of what a load read. */
function countingReads(store: EventStore): { store: EventStore; eventsRead: () => number; reset: () => void } {
  let count = 0
  const counted = new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'readStream') {
        return async (...args: Parameters<EventStore['readStream']>) => {
          const events = await target.readStream(...args)
          count += events.length
          return events
        }
      }
      const value: unknown = Reflect.get(target, property, receiver)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return { store: counted, eventsRead: () => count, reset: () => void (count = 0) }
}

describe.each(DATABASE_BACKENDS)('task state through time on $backend', ({ open }) => {
  let database: Database
  let store: PostgresEventStore
  let snapshots: PostgresSnapshotStore
  beforeAll(async () => {
    database = await open()
    store = new PostgresEventStore(database)
    snapshots = new PostgresSnapshotStore(database)
  })
  afterAll(async () => {
    await store?.close()
    await database?.close()
  })

  const tenantId = `t_${randomSuffix(4)}`
  let streams = 0
  const newTask = () => `task-${++streams}`

  async function snapshotRevisions(taskId: string): Promise<number[]> {
    const { rows } = await database.pool.query<{ revision: string }>('select revision from task_snapshots where stream_name = $1 order by revision', [taskStreamName(tenantId, taskId)])
    return rows.map((row) => Number(row.revision))
  }

  it('snapshots never change an answer: every revision and many times, against a fold of all events (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          steps: fc.array(stepArbitrary, { minLength: 1, maxLength: 320, size: 'max' }),
          batchSizes: fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 8 }),
          policy: fc.record({ everyEvents: fc.integer({ min: 1, max: 60 }), everyBytes: fc.oneof(fc.constant(Number.MAX_SAFE_INTEGER), fc.integer({ min: 200, max: 5_000 })) }),
          // Offsets of recordedAt per event, in ms; null keeps the times the store recorded.
          timeSteps: fc.option(fc.array(fc.integer({ min: -1_500, max: 4_000 }), { minLength: 1, maxLength: 50 }), { nil: null }),
          warmUps: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 4 }),
          probes: fc.array(fc.double({ min: -0.1, max: 1.1, noNaN: true }), { minLength: 10, maxLength: 25 }),
        }),
        async ({ steps, batchSizes, policy, timeSteps, warmUps, probes }) => {
          const taskId = newTask()
          const stream = taskStreamName(tenantId, taskId)
          await appendInBatches(store, stream, eventsOf(new TaskEventFactory(tenantId, taskId), steps), batchSizes)
          if (timeSteps) {
            let at = 0
            await setRecordedAt(database, stream, steps.map((_, n) => (at += timeSteps[n % timeSteps.length]!)))
          }
          const ref = await reference(store, stream)
          const last = ref.events.length - 1
          const deps: TaskStateDeps = { store, snapshots, snapshotPolicy: policy as SnapshotPolicy }

          // Leave snapshots behind at arbitrary points first, as earlier reads would have.
          for (const fraction of warmUps) await loadTaskState(deps, tenantId, taskId, { at: { revision: BigInt(Math.floor(fraction * last)) } })
          await loadTaskState(deps, tenantId, taskId)

          // The comparison means something only if snapshots are really used: from the first one on, every load uses one.
          const firstSnapshot = (await snapshotRevisions(taskId))[0] ?? Number.POSITIVE_INFINITY
          for (let revision = 0; revision <= last + 1; revision++) {
            const loaded = await expectSameAnswer(deps, tenantId, taskId, ref, { revision: BigInt(revision) })
            if (loaded) expect(loaded.usedSnapshot, `revision ${revision}`).toBe(revision >= firstSnapshot)
          }
          const times = ref.events.map((event) => event.recordedAt.getTime())
          const first = Math.min(...times)
          const span = Math.max(...times) - first
          const instants = [...new Set(times)].flatMap((t) => [t - 1, t, t + 1]).concat(probes.map((p) => Math.round(first + p * span)))
          for (const instant of instants) await expectSameAnswer(deps, tenantId, taskId, ref, { timestamp: new Date(instant) })
          const latest = await loadTaskState(deps, tenantId, taskId)
          expect(latest.state).toEqual(ref.states[last])
          if (last + 1 >= policy.everyEvents) expect(latest.usedSnapshot).toBe(true)
        },
      ),
      // A failing run is shrunk to a small counterexample; the time limit keeps that search inside the test's timeout.
      { numRuns: 8, interruptAfterTimeLimit: 150_000, markInterruptAsFailure: true },
    )
  }, 240_000)

  it('a long stream recorded in real time: the same answer at every revision and every recorded instant', async () => {
    const taskId = newTask()
    const stream = taskStreamName(tenantId, taskId)
    const steps = fc.sample(stepArbitrary, { numRuns: 700, seed: 42 })
    await appendInBatches(store, stream, eventsOf(new TaskEventFactory(tenantId, taskId), steps), [1, 7, 30, 2, 60, 13])
    const ref = await reference(store, stream)
    const deps: TaskStateDeps = { store, snapshots }
    const counted = countingReads(store)
    for (let revision = ref.events.length; revision >= 0; revision--) await expectSameAnswer(deps, tenantId, taskId, ref, { revision: BigInt(revision) })
    for (const time of new Set(ref.events.map((event) => event.recordedAt.getTime()))) {
      for (const instant of [time - 1, time]) await expectSameAnswer({ ...deps, store: counted.store }, tenantId, taskId, ref, { timestamp: new Date(instant) })
    }
    // The default policy left a snapshot every 50 events.
    expect(await snapshotRevisions(taskId)).toEqual(Array.from({ length: 14 }, (_, i) => 50 * i + 49))
    // With snapshots in place, a point-in-time read never folds more than the 50 events after the newest one before it.
    counted.reset()
    await loadTaskState({ ...deps, store: counted.store }, tenantId, taskId, { at: { timestamp: ref.events[ref.events.length - 1]!.recordedAt } })
    expect(counted.eventsRead()).toBeLessThanOrEqual(51)
  })

  it('reads only the events after the snapshot, never the whole stream', async () => {
    const taskId = newTask()
    const stream = taskStreamName(tenantId, taskId)
    await appendInBatches(store, stream, eventsOf(new TaskEventFactory(tenantId, taskId), fc.sample(stepArbitrary, { numRuns: 120, seed: 7 })), [25])
    const counted = countingReads(store)
    const without = await loadTaskState({ store: counted.store }, tenantId, taskId)
    expect([without.usedSnapshot, without.eventsFolded, counted.eventsRead()]).toEqual([false, 120, 120])

    await loadTaskState({ store, snapshots }, tenantId, taskId) // saves snapshots at 49 and 99
    expect(await snapshotRevisions(taskId)).toEqual([49, 99])
    counted.reset()
    const latest = await loadTaskState({ store: counted.store, snapshots, snapshotPolicy: false }, tenantId, taskId)
    // The event at the snapshot's revision (to check it is still the same event), then the 20 after it.
    expect([latest.usedSnapshot, latest.snapshotRevision, latest.eventsFolded, counted.eventsRead()]).toEqual([true, 99n, 20, 21])
    expect(latest.state).toEqual(without.state)
    counted.reset()
    const past = await loadTaskState({ store: counted.store, snapshots }, tenantId, taskId, { at: { revision: 60n } })
    expect([past.snapshotRevision, past.eventsFolded, counted.eventsRead()]).toEqual([49n, 11, 12])
  })

  it('saves a snapshot every N events, or sooner by size, and none when told not to', async () => {
    const taskId = newTask()
    const stream = taskStreamName(tenantId, taskId)
    const f = new TaskEventFactory(tenantId, taskId)
    // 35 events: every fifth a synthesis carrying about 1,700 characters of data, the others (failed calls) about 520.
    const pending = Array.from({ length: 35 }, (_, n) => (n % 5 === 4 ? f.synthesisInvoked('x'.repeat(600)) : f.routingFailed(true, 1)))
    await appendInBatches(store, stream, pending, [35])
    await loadTaskState({ store, snapshots, snapshotPolicy: false }, tenantId, taskId)
    await loadTaskState({ store }, tenantId, taskId)
    expect(await snapshotRevisions(taskId)).toEqual([])
    await loadTaskState({ store, snapshots, snapshotPolicy: { everyEvents: 10 } }, tenantId, taskId)
    expect(await snapshotRevisions(taskId)).toEqual([9, 19, 29])
    // Four small events (about 2,100 characters) stay under 3,000; the large fifth passes it.
    expect(await snapshots.deleteStream(tenantId, stream)).toBe(3)
    await loadTaskState({ store, snapshots, snapshotPolicy: { everyEvents: 1_000, everyBytes: 3_000 } }, tenantId, taskId)
    expect(await snapshotRevisions(taskId)).toEqual([4, 9, 14, 19, 24, 29, 34])
    await snapshots.deleteStream(tenantId, stream)
    await loadTaskState({ store, snapshots, snapshotPolicy: { everyEvents: 1_000, everyBytes: 1 } }, tenantId, taskId)
    expect(await snapshotRevisions(taskId)).toEqual(Array.from({ length: 35 }, (_, n) => n))
    const { rows } = await database.pool.query<{ tenant_id: string; state_version: number; state_bytes: number; event_id: string }>(
      'select tenant_id, state_version, state_bytes, event_id::text from task_snapshots where stream_name = $1 and revision = 34',
      [stream],
    )
    const atRevision34 = (await store.readStream(stream, { fromRevision: 34n, maxCount: 1 }))[0]!
    expect(rows[0]).toEqual({ tenant_id: tenantId, state_version: TASK_STATE_VERSION, state_bytes: expect.any(Number), event_id: atRevision34.eventId })
    expect(rows[0]!.state_bytes).toBeGreaterThan(600)
  })

  it('ignores snapshots it cannot trust: another state version, a state that is not a TaskState, or another event at that revision', async () => {
    const taskId = newTask()
    const stream = taskStreamName(tenantId, taskId)
    await appendInBatches(store, stream, eventsOf(new TaskEventFactory(tenantId, taskId), fc.sample(stepArbitrary, { numRuns: 30, seed: 3 })), [30])
    const ref = await reference(store, stream)
    const at29 = ref.events[29]!
    const lying: TaskState = { ...initialTaskState, status: 'completed', answer: 'a snapshot that lies', eventsApplied: 30 }
    const untrusted = [
      { stateVersion: TASK_STATE_VERSION + 1, eventId: at29.eventId, state: lying },
      { stateVersion: TASK_STATE_VERSION, eventId: at29.eventId, state: { status: 'completed', toolCalls: 'none' } },
      { stateVersion: TASK_STATE_VERSION, eventId: '00000000-0000-4000-8000-000000000000', state: lying },
    ]
    for (const snapshot of untrusted) {
      await snapshots.save([{ tenantId, streamName: stream, revision: 29n, latestRecordedAt: at29.recordedAt, ...snapshot }])
      const loaded = await loadTaskState({ store, snapshots, snapshotPolicy: false }, tenantId, taskId)
      expect(loaded.usedSnapshot).toBe(false)
      expect(loaded.state).toEqual(ref.states[29])
    }
    // The same snapshot with the event really at revision 29 is trusted (which is why the ones above had to be refused).
    await snapshots.save([{ tenantId, streamName: stream, revision: 29n, latestRecordedAt: at29.recordedAt, stateVersion: TASK_STATE_VERSION, eventId: at29.eventId, state: lying }])
    expect((await loadTaskState({ store, snapshots, snapshotPolicy: false }, tenantId, taskId)).state.answer).toBe('a snapshot that lies')
  })

  it('keeps one snapshot per (stream, revision): a repeat changes nothing, another state version replaces it', async () => {
    const taskId = newTask()
    const stream = taskStreamName(tenantId, taskId)
    const base = { tenantId, streamName: stream, revision: 3n, eventId: '11111111-1111-4111-8111-111111111111', latestRecordedAt: new Date('2026-03-01T08:00:00Z') }
    const createdAt = async () => (await database.pool.query<{ created_at: Date; state_version: number }>('select created_at, state_version from task_snapshots where stream_name = $1', [stream])).rows
    await snapshots.save([{ ...base, stateVersion: 1, state: { a: 1 } }])
    const [first] = await createdAt()
    await snapshots.save([{ ...base, stateVersion: 1, state: { a: 2 } }])
    expect(await createdAt()).toEqual([first])
    await snapshots.save([{ ...base, stateVersion: 2, state: { a: 3 } }])
    expect((await createdAt()).map((row) => row.state_version)).toEqual([2])
    expect(await snapshots.findLatest(tenantId, stream, 1)).toBeUndefined()
    expect((await snapshots.findLatest(tenantId, stream, 2))?.state).toEqual({ a: 3 })
  })

  it("reads snapshots only for the stream's own tenant", async () => {
    const taskId = newTask()
    const stream = taskStreamName(tenantId, taskId)
    const snapshot = { tenantId, streamName: stream, revision: 0n, eventId: '11111111-1111-4111-8111-111111111111', latestRecordedAt: new Date(), stateVersion: 1, state: {} }
    await snapshots.save([snapshot])
    const other = `${tenantId}_eu`
    await expect(snapshots.findLatest(other, stream, 1)).rejects.toThrow(`stream ${stream} belongs to tenant ${tenantId}, not ${other}`)
    await expect(snapshots.save([{ ...snapshot, tenantId: other }])).rejects.toThrow(RangeError)
    await expect(snapshots.deleteStream(other, stream)).rejects.toThrow(RangeError)
    await expect(snapshots.save([{ ...snapshot, eventId: 'not-a-uuid' }])).rejects.toThrow(/the event ID must be a UUID/)
    expect(await snapshots.findLatest(other, taskStreamName(other, taskId), 1)).toBeUndefined()
    // The table itself refuses a row whose tenant is not the stream's, including a tenant whose name extends it.
    await expect(
      database.pool.query(
        `insert into task_snapshots (stream_name, revision, tenant_id, event_id, latest_recorded_at, state_version, state, state_bytes)
         values ($1, 1, $2, gen_random_uuid(), now(), 1, '{}', 2)`,
        [taskStreamName(other, taskId), tenantId],
      ),
    ).rejects.toThrow(/task_snapshots_stream_of_tenant/)
  })

  it('gives clear errors: no such task, a revision beyond the end, a time before the first event, bad IDs', async () => {
    const taskId = newTask()
    const stream = taskStreamName(tenantId, taskId)
    const deps = { store, snapshots }
    await expect(loadTaskState(deps, tenantId, taskId)).rejects.toThrow(TaskNotFoundError)
    await appendInBatches(store, stream, eventsOf(new TaskEventFactory(tenantId, taskId), [{ kind: 'received' }, { kind: 'routed' }]), [2])
    await expect(loadTaskState(deps, tenantId, taskId, { at: { revision: 2n } })).rejects.toThrow(`no state of ${stream} at revision 2: the stream ends at revision 1`)
    const [first] = await store.readStream(stream)
    const before = new Date(first!.recordedAt.getTime() - 1)
    await expect(loadTaskState(deps, tenantId, taskId, { at: { timestamp: before } })).rejects.toThrow(
      `no state of ${stream} at ${before.toISOString()}: its first event (revision 0) was recorded at ${first!.recordedAt.toISOString()}`,
    )
    await expect(loadTaskState(deps, 'Acme-Corp', taskId)).rejects.toThrow(InvalidIdentifierError)
    await expect(loadTaskState(deps, tenantId, taskId, { at: { revision: -1n } })).rejects.toThrow(/at.revision must be a bigint >= 0/)
    await expect(loadTaskState(deps, tenantId, taskId, { at: { timestamp: new Date('nope') } })).rejects.toThrow(/at.timestamp must be a valid Date/)
  })

  it('an unreadable event after a snapshot stops the load with its name; it is never skipped', async () => {
    const taskId = newTask()
    const stream = taskStreamName(tenantId, taskId)
    await appendInBatches(store, stream, eventsOf(new TaskEventFactory(tenantId, taskId), fc.sample(stepArbitrary, { numRuns: 12, seed: 9 })), [12])
    await loadTaskState({ store, snapshots, snapshotPolicy: { everyEvents: 10 } }, tenantId, taskId)
    await store.appendToStream(stream, [{ eventId: '22222222-2222-4222-8222-222222222222', type: 'RefundIssued', data: {}, metadata: { schemaVersion: 1, tenantId, taskId } }], {
      expectedRevision: 11n,
    })
    await expect(loadTaskState({ store, snapshots }, tenantId, taskId)).rejects.toThrow(UnknownEventTypeError)
    await expect(loadTaskState({ store, snapshots }, tenantId, taskId)).rejects.toThrow(/RefundIssued/)
    expect((await loadTaskState({ store, snapshots }, tenantId, taskId, { at: { revision: 11n } })).usedSnapshot).toBe(true)
  })
})
