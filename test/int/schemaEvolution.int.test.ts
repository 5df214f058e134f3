import { describe, expect, it } from 'vitest'
import { CURRENT_SCHEMA_VERSION, EVENT_TYPES, UnknownEventTypeError, type AnnalistEventType } from '../../historian/events'
import { loadTaskState } from '../../historian/loadTaskState'
import { parseTaskStreamName } from '../../historian/streams'
import { foldTask } from '../../historian/taskState'
import { auditTrail } from '../../projections/auditTimeline/query'
import { listDeadLetters } from '../../projections/projectionDeadLetters'
import { defaultProjections } from '../../projections/defaultProjections'
import { ProjectionRunner, readCheckpoint } from '../../projections/runner'
import { taskSummaries } from '../../projections/taskSummary/query'
import { DATABASE_BACKENDS, historianPerTest } from '../support/databases'
import { loadV1TaskStream, v1NewEvents } from '../support/v1Fixture'

const fixture = loadV1TaskStream()
const { tenantId, taskId } = parseTaskStreamName(fixture.streamName)

describe.each(DATABASE_BACKENDS)('stored v1 events on $backend', ({ open }) => {
  const db = historianPerTest(open)

  /** Stores the fixture as the v1 build did: through the port, with no schema check of today's build in the way. */
  async function storeV1Stream(): Promise<bigint> {
    return (await db.store.appendToStream(fixture.streamName, v1NewEvents(fixture), { expectedRevision: 'no_stream' })).position
  }

  async function storedRoutingRow() {
    const { rows } = await db.database.pool.query<{ schema_version: number; has_candidates: boolean; metadata_version: number }>(
      `select schema_version, data ? 'candidateRoutes' as has_candidates, (metadata->>'schemaVersion')::int as metadata_version
         from events where stream_name = $1 and event_type = 'RoutingModelInvoked'`,
      [fixture.streamName],
    )
    return rows
  }

  it('read through the Historian as the current version of every type, and fold into the completed task', async () => {
    await storeV1Stream()
    expect(await storedRoutingRow()).toEqual([{ schema_version: 1, has_candidates: false, metadata_version: 1 }])

    const stream = await db.historian.readTask(tenantId, taskId)
    expect(stream.events.map((stored) => [Number(stored.revision), stored.eventId, stored.event.type])).toEqual(
      fixture.events.map((stored) => [stored.revision, stored.eventId, stored.type]),
    )
    for (const { event } of stream.events) {
      expect(EVENT_TYPES).toContain(event.type)
      expect(event.metadata.schemaVersion, event.type).toBe(CURRENT_SCHEMA_VERSION[event.type as AnnalistEventType])
    }
    const routing = stream.events.map((stored) => stored.event).find((event) => event.type === 'RoutingModelInvoked')
    expect(routing?.type === 'RoutingModelInvoked' && routing.data).toMatchObject({
      route: 'notification',
      candidateRoutes: ['research', 'calculation', 'notification', 'account', 'general'],
    })

    const state = foldTask(stream.events.map((stored) => stored.event))
    const completed = fixture.events[fixture.events.length - 1]!.data
    expect(state).toMatchObject({
      status: 'completed',
      route: 'notification',
      candidateRoutes: ['research', 'calculation', 'notification', 'account', 'general'],
      totalTokens: completed.totalTokens,
      totalCostUsd: completed.totalCostUsd,
      answer: completed.answer,
    })
    expect((await loadTaskState({ store: db.store }, tenantId, taskId)).state).toEqual(state)

    // Reading upcasts in memory only: the stored row is still the v1 event it always was.
    expect(await storedRoutingRow()).toEqual([{ schema_version: 1, has_candidates: false, metadata_version: 1 }])
  })

  it('are applied by the projections like any current event, with no dead letters', async () => {
    const end = await storeV1Stream()
    const runner = new ProjectionRunner({ store: db.store, pool: db.database.pool, projections: defaultProjections() })
    expect(await runner.catchUp()).toBe(end)
    expect(await listDeadLetters(db.database.pool)).toEqual([])
    const trail = await auditTrail(db.database.pool, { tenantId, taskId })
    expect(trail.map((entry) => entry.eventType)).toEqual(fixture.events.map((event) => event.type))
    expect(trail.find((entry) => entry.eventType === 'RoutingModelInvoked')).toMatchObject({ route: 'notification' })
    const [summary] = await taskSummaries(db.database.pool, { tenantId, taskId })
    expect(summary).toMatchObject({ status: 'completed', route: 'notification', toolCallsSucceeded: 2, modelAttemptsFailed: 1, eventsApplied: 8 })
  })

  it('an event of a future version is refused by name everywhere it is read, and dead-lettered, never dropped', async () => {
    const [received, failedAttempt, routing] = v1NewEvents(fixture, { to: 3 })
    const future = { ...routing!, metadata: { ...routing!.metadata, schemaVersion: CURRENT_SCHEMA_VERSION.RoutingModelInvoked + 1 } }
    await db.store.appendToStream(fixture.streamName, [received!, failedAttempt!, future], { expectedRevision: 'no_stream' })
    const after = await db.store.appendToStream(fixture.streamName, v1NewEvents(fixture, { from: 3 }), { expectedRevision: 2n })

    const named = new RegExp(`RoutingModelInvoked schema version ${CURRENT_SCHEMA_VERSION.RoutingModelInvoked + 1}: this build reads RoutingModelInvoked schema versions 1 to ${CURRENT_SCHEMA_VERSION.RoutingModelInvoked}`)
    await expect(db.historian.readTask(tenantId, taskId)).rejects.toThrow(UnknownEventTypeError)
    await expect(db.historian.readTask(tenantId, taskId)).rejects.toThrow(named)
    await expect(db.historian.readTenantLog(tenantId)).rejects.toThrow(named)
    await expect(loadTaskState({ store: db.store }, tenantId, taskId)).rejects.toThrow(named)
    // The state before it is still there to read; the state at it or after is not.
    expect((await loadTaskState({ store: db.store }, tenantId, taskId, { at: { revision: 1n } })).state.modelAttemptsFailed).toBe(1)
    await expect(loadTaskState({ store: db.store }, tenantId, taskId, { at: { revision: 2n } })).rejects.toThrow(named)

    const runner = new ProjectionRunner({ store: db.store, pool: db.database.pool, projections: defaultProjections(), batchSize: 4 })
    expect(await runner.catchUp()).toBe(after.position)
    const letters = await listDeadLetters(db.database.pool)
    expect(letters.map((letter) => [letter.projection, letter.eventType, letter.eventId])).toEqual([
      ['analytics', 'RoutingModelInvoked', routing!.eventId],
      ['audit_timeline', 'RoutingModelInvoked', routing!.eventId],
      ['task_dead_letters', 'RoutingModelInvoked', routing!.eventId],
      ['task_summary', 'RoutingModelInvoked', routing!.eventId],
    ])
    for (const letter of letters) expect(letter.error).toMatch(new RegExp(`^UnknownEventTypeError: .*${named.source}`))
    for (const projection of ['analytics', 'audit_timeline', 'task_dead_letters', 'task_summary']) expect(await readCheckpoint(db.database.pool, projection)).toBe(after.position)
    // Every other event was applied: the poison event is the only one missing from the timeline.
    const trail = await auditTrail(db.database.pool, { tenantId, taskId })
    expect(trail).toHaveLength(fixture.events.length - 1)
    expect(trail.map((entry) => entry.eventId)).not.toContain(routing!.eventId)
  })

  it('an event of an unknown type makes readTask throw naming it', async () => {
    await db.store.appendToStream(fixture.streamName, [...v1NewEvents(fixture, { to: 1 }), { eventId: '5d0c1b7e-9a2f-4c3e-8b1d-6f4a2e9c0b37', type: 'RefundIssued', data: { amountCents: 1200 }, metadata: { schemaVersion: 1, tenantId, taskId } }], {
      expectedRevision: 'no_stream',
    })
    await expect(db.historian.readTask(tenantId, taskId)).rejects.toThrow('unknown event type RefundIssued (schema version 1): this build cannot read it')
  })
})
