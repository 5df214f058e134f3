import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { activityFactsOf } from '../../cli/runtime/temporalHistories'
import { compensationIdempotencyKey } from '../../historian/eventIds'
import { verifyChain } from '../../historian/integrity/verifyChain'
import { taskStreamName } from '../../historian/streams'
import { foldTask } from '../../historian/taskState'
import { auditTrail } from '../../projections/auditTimeline/query'
import { ProjectionRunner } from '../../projections/runner'
import { auditProjections } from '../support/auditFixtures'
import { pipelineHarness, uniqueSuffix, type PipelineHarness } from '../support/pipelineHarness'

const NOTIFY = 'Notify the on-call team on slack that the nightly export finished'
const SEARCH = 'Search the knowledge base for the data retention policy'

/**
 * Saga-style compensation on a real Temporal server: a task that fails after sending a notification retracts it, once,
 * and records that between the notification and the task's failure; a completed task, or a failed one without side
 * effects, runs no compensation at all.
 */
describe.each(['postgres', 'pglite'] as const)('compensations of side effects with the %s historian', (kind) => {
  let harness: PipelineHarness
  const doomed = `doomed_${uniqueSuffix()}`
  const fine = `fine_${uniqueSuffix()}`

  beforeAll(async () => {
    // Synthesis fails for good (a non-retryable context-length error) for one tenant only.
    harness = await pipelineHarness(kind, { faults: { rules: [{ target: 'synthesis', kind: 'context_length', tenantId: doomed, attempts: [1, 2, 3, 4] }] } })
  })
  afterAll(async () => harness?.close())

  const run = async (tenantId: string, taskId: string, input: string) => {
    const handle = await startPipeline(harness.client, { tenantId, taskId, input, requestedBy: 'test', tuning: { retryInitialIntervalMs: 50 } }, harness.taskQueue)
    const result = await harness.withWorker(() => handle.result())
    const activities = activityFactsOf(await handle.fetchHistory())
    const events = await harness.store.readStream(taskStreamName(tenantId, taskId))
    const outbox = await harness.database.pool.query<{ id: string; kind: string; retracts_id: string | null; channel: string; message: string; idempotency_key: string; tool_call_id: string }>(
      'select id::text as id, kind, retracts_id::text as retracts_id, channel, message, idempotency_key, tool_call_id from tool_outbox where tenant_id = $1 and task_id = $2 order by tool_outbox.id',
      [tenantId, taskId],
    )
    return { result, activities, events, outbox: outbox.rows }
  }

  it('a task that fails after a notification retracts it once, recorded after the notification and before the failure', async () => {
    const { result, activities, events, outbox } = await run(doomed, 'notify-1', NOTIFY)
    expect(result).toMatchObject({ status: 'failed', failedStep: 'synthesize', errorCode: 'MODEL_CONTEXT_LENGTH_EXCEEDED' })

    // Temporal read the run's side effects from the stream and ran one compensation activity, for the notification only
    // (t2 searched: no side effect), before failTask.
    expect(activities.map((fact) => fact.activityId)).toEqual(['receive', 'route', 'plan', 'tool:t1', 'tool:t2', 'synthesize', 'side-effects', 'compensate:t1', 'fail'])

    // The outbox holds the notification and exactly one retraction pointing at it, on the same channel.
    expect(outbox.map((row) => [row.kind, row.tool_call_id])).toEqual([
      ['notification', 't1'],
      ['retraction', 't1'],
    ])
    const [notification, retraction] = outbox
    expect(retraction).toMatchObject({ retracts_id: notification!.id, channel: notification!.channel })
    expect(retraction!.message).toContain(`outbox:${notification!.id}`)

    const types = events.map((event) => event.type)
    const executed = events.findIndex((event) => event.type === 'ToolCallExecuted' && (event.data as { toolName: string }).toolName === 'send_notification')
    const compensated = types.indexOf('ToolCallCompensated')
    expect(types.filter((type) => type === 'ToolCallCompensated')).toHaveLength(1)
    expect(types).not.toContain('ToolCompensationFailed')
    expect(executed).toBeGreaterThanOrEqual(0)
    expect(compensated).toBeGreaterThan(executed)
    expect(types.indexOf('AgentTaskFailed')).toBeGreaterThan(compensated)

    const notified = events[executed]!
    const meta = notified.metadata as { workflowId: string; runId: string; activityId: string }
    expect(events[compensated]!.data).toMatchObject({
      toolCallId: 't1',
      toolName: 'send_notification',
      sideEffectId: `outbox:${notification!.id}`,
      compensationId: `outbox:${retraction!.id}`,
      idempotencyKey: compensationIdempotencyKey(meta.workflowId, meta.runId, meta.activityId),
    })
    expect(retraction!.idempotency_key).toBe(compensationIdempotencyKey(meta.workflowId, meta.runId, meta.activityId))
    // The compensation names the side effect it undoes as its cause.
    expect(events[compensated]!.metadata).toMatchObject({ activityId: 'compensate:t1', causationId: notified.eventId })

    const state = foldTask((await harness.historian.readTask(doomed, 'notify-1')).events.map((stored) => stored.event))
    expect(state.toolOutcomes.t1).toMatchObject({ ok: true, compensation: { ok: true, compensationId: `outbox:${retraction!.id}` } })
    expect(await verifyChain({ store: harness.store, keyRing: harness.keyRing, tenantId: doomed, taskId: 'notify-1' })).toMatchObject({ intact: true, eventsChecked: events.length })

    // The audit trail shows the compensation, in order, in plain words.
    await new ProjectionRunner({ store: harness.store, pool: harness.database.pool, projections: auditProjections() }).catchUp()
    const trail = await auditTrail(harness.database.pool, { tenantId: doomed, taskId: 'notify-1' })
    expect(trail.map((entry) => entry.eventType)).toEqual(types)
    expect(trail[compensated]).toMatchObject({ toolName: 'send_notification', toolCallId: 't1', sideEffectId: `outbox:${notification!.id}` })
    expect(trail[compensated]!.summary).toBe(`side effect outbox:${notification!.id} of tool send_notification (call t1) compensated by outbox:${retraction!.id}`)
  })

  it('a completed task runs no compensation, although it sent a notification', async () => {
    const { result, activities, events, outbox } = await run(fine, 'notify-2', NOTIFY)
    expect(result.status).toBe('completed')
    expect(activities.map((fact) => fact.activityId).filter((id) => id.startsWith('compensate:'))).toEqual([])
    expect(outbox.map((row) => row.kind)).toEqual(['notification'])
    expect(events.map((event) => event.type)).not.toContain('ToolCallCompensated')
  })

  it('a failed task without side effects finds none to compensate and runs no compensation activity', async () => {
    const { result, activities, events, outbox } = await run(doomed, 'search-1', SEARCH)
    expect(result).toMatchObject({ status: 'failed', failedStep: 'synthesize' })
    expect(activities.map((fact) => fact.activityId)).toEqual(['receive', 'route', 'plan', 'tool:t1', 'synthesize', 'side-effects', 'fail'])
    expect(outbox).toEqual([])
    expect(events.map((event) => event.type).filter((type) => type.includes('Compensat'))).toEqual([])
  })
})
