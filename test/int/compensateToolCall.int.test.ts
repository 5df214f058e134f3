import { MockActivityEnvironment } from '@temporalio/testing'
import { ApplicationFailure } from '@temporalio/common'
import { activityInterceptors } from '../../activities/activityInterceptors'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ModelClient } from '../../activities/models/modelClient'
import { modelsFromConfig } from '../../activities/models/modelsFromConfig'
import { createActivities } from '../../activities/pipelineActivities'
import { calculatorTool } from '../../activities/tools/calculator'
import { knowledgeBaseTool } from '../../activities/tools/knowledgeBase'
import { createDefaultTools, ToolRegistry } from '../../activities/tools/registry'
import { createSendNotificationTool, retractNotification, RetractionTargetError } from '../../activities/tools/sendNotification'
import type { CompensationContext } from '../../activities/tools/tool'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { compensationIdempotencyKey, outcomeEventId, toolIdempotencyKey } from '../../historian/eventIds'
import { Historian } from '../../historian/historian'
import { verifyChain } from '../../historian/integrity/verifyChain'
import { foldTask } from '../../historian/taskState'
import { freshPgliteDatabase, freshPostgresDatabase, randomKeyRing } from '../support/databases'
import { uniqueSuffix } from '../support/pipelineHarness'

const RUN_ID = '21111111-2222-4333-8444-555555555555'
const NOTIFY = 'Notify the on-call team on slack that the nightly export finished'
const MAX_ATTEMPTS = 3

/** The workflow ID of a test task: tool idempotency keys derive from it, so every task needs its own. */
const workflowIdOf = (task: { tenantId: string; taskId: string }) => `agent-pipeline:${task.tenantId}:${task.taskId}`

function environment(task: { tenantId: string; taskId: string }, activityId: string, attempt: number) {
  const env = new MockActivityEnvironment({
    workflowExecution: { workflowId: workflowIdOf(task), runId: RUN_ID },
    activityId,
    attempt,
    heartbeatTimeoutMs: 10_000,
    retryPolicy: { maximumAttempts: MAX_ATTEMPTS },
  }, { interceptors: activityInterceptors })
  return { run: <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => env.run(fn, ...args) as Promise<R> }
}

/** The context a compensation of tool call t1 gets, for calling retractNotification directly. */
function retraction(task: { tenantId: string; taskId: string }, sideEffectId: string, idempotencyKey: string): CompensationContext {
  const unused = { parameters: {}, result: null, callIdempotencyKey: 'unused' }
  return { ...task, ...unused, toolCallId: 't1', sideEffectId, idempotencyKey, attempt: 1, abortSignal: new AbortController().signal }
}

describe.each(['postgres', 'pglite'] as const)('the compensateToolCall activity (%s)', (kind) => {
  let database: Database
  let historian: Historian
  let activities: ReturnType<typeof createActivities>
  let brokenRelay: ReturnType<typeof createActivities>

  beforeAll(async () => {
    database = kind === 'postgres' ? await freshPostgresDatabase() : await freshPgliteDatabase()
    historian = new Historian(new PostgresEventStore(database), { keyRing: randomKeyRing() })
    const deps = { historian, models: new ModelClient(modelsFromConfig({ provider: 'scripted', latencyMs: 0 })), clock: () => new Date() }
    activities = createActivities({ ...deps, tools: createDefaultTools({ pool: database.pool }) })
    // The same tools, except that the notification's compensation always fails (its mail relay is down).
    const notify = createSendNotificationTool({ pool: database.pool })
    const relayDown = { ...notify, compensate: async () => Promise.reject(new Error('mail relay down')) }
    brokenRelay = createActivities({ ...deps, tools: new ToolRegistry([calculatorTool, knowledgeBaseTool, relayDown]) })
  })
  afterAll(async () => {
    await historian?.store.close()
    await database?.close()
  })

  /** Runs receive, route, plan and the notification (t1) and search (t2) tool calls of a fresh task, as the workflow would. */
  async function notifiedTask(using = activities) {
    const task = { tenantId: `t_${uniqueSuffix()}`, taskId: 'k1' }
    await environment(task, 'receive', 1).run(using.receiveTask, { ...task, input: NOTIFY, requestedBy: 'test' })
    await environment(task, 'route', 1).run(using.routeTask, task)
    expect((await environment(task, 'plan', 1).run(using.planTask, task)).toolCallIds).toEqual(['t1', 't2'])
    const notified = await environment(task, 'tool:t1', 1).run(using.executeToolCall, { ...task, toolCallId: 't1' })
    const searched = await environment(task, 'tool:t2', 1).run(using.executeToolCall, { ...task, toolCallId: 't2' })
    return { task, notified, searched }
  }
  const outbox = async (tenantId: string) =>
    (
      await database.pool.query<{ id: string; kind: string; retracts_id: string | null; idempotency_key: string }>(
        'select id::text as id, kind, retracts_id::text as retracts_id, idempotency_key from tool_outbox where tenant_id = $1 order by tool_outbox.id',
        [tenantId],
      )
    ).rows
  const eventsOf = async (task: { tenantId: string; taskId: string }) => (await historian.readTask(task.tenantId, task.taskId)).events

  it('executeToolCall reports which calls left a side effect their tool can undo', async () => {
    const { notified, searched } = await notifiedTask()
    expect(notified).toMatchObject({ ok: true, compensable: true, sideEffectId: expect.stringMatching(/^outbox:\d+$/) })
    expect(searched).toMatchObject({ ok: true, compensable: false })
    expect(searched.sideEffectId).toBeUndefined()
  })

  it('retracts the notification once, whatever the attempts, concurrent or not, and records ToolCallCompensated', async () => {
    const { task, notified } = await notifiedTask()
    const results = await Promise.all([1, 2].map((attempt) => environment(task, 'compensate:t1', attempt).run(activities.compensateToolCall, { ...task, toolCallId: 't1' })))
    const again = await environment(task, 'compensate:t1', 3).run(activities.compensateToolCall, { ...task, toolCallId: 't1' })
    const rows = await outbox(task.tenantId)
    expect(rows.map((row) => row.kind)).toEqual(['notification', 'retraction'])
    const expected = { ok: true, compensationId: `outbox:${rows[1]!.id}`, eventId: outcomeEventId(workflowIdOf(task), RUN_ID, 'compensate:t1', 0) }
    expect([...results, again]).toEqual([expected, expected, expected])
    expect(`outbox:${rows[1]!.retracts_id}`).toBe(notified.sideEffectId)

    const events = await eventsOf(task)
    const compensated = events.filter((stored) => stored.event.type === 'ToolCallCompensated')
    expect(compensated).toHaveLength(1)
    const key = compensationIdempotencyKey(workflowIdOf(task), RUN_ID, 'tool:t1')
    expect(key).not.toBe(toolIdempotencyKey(workflowIdOf(task), RUN_ID, 'tool:t1'))
    expect(rows[1]!.idempotency_key).toBe(key)
    expect(compensated[0]!.event.data).toMatchObject({ toolCallId: 't1', toolName: 'send_notification', sideEffectId: notified.sideEffectId, idempotencyKey: key })
    expect(foldTask(events.map((stored) => stored.event)).toolOutcomes.t1).toMatchObject({ compensation: { ok: true, compensationId: expected.compensationId } })
    expect(await verifyChain({ store: historian.store, keyRing: historian.keyRing!, ...task })).toMatchObject({ intact: true, eventsChecked: events.length })
  })

  it('after an attempt died between the retraction and its event, the retry records the same retraction', async () => {
    const { task, notified } = await notifiedTask()
    // What a killed attempt left behind: the retraction is in the outbox, no event says so.
    const executed = (await eventsOf(task)).find((stored) => stored.event.type === 'ToolCallExecuted' && stored.event.data.toolCallId === 't1')!.event
    const key = compensationIdempotencyKey(executed.metadata.workflowId, executed.metadata.runId, executed.metadata.activityId)
    const orphan = await retractNotification(database.pool, retraction(task, notified.sideEffectId!, key))
    const retried = await environment(task, 'compensate:t1', 2).run(activities.compensateToolCall, { ...task, toolCallId: 't1' })
    expect(retried).toMatchObject({ ok: true, compensationId: orphan.compensationId })
    expect((await outbox(task.tenantId)).map((row) => row.kind)).toEqual(['notification', 'retraction'])
  })

  it('refuses, non-retryably and writing nothing, a call without a side effect or without a recorded execution', async () => {
    const { task } = await notifiedTask()
    const before = await eventsOf(task)
    for (const [toolCallId, why] of [
      ['t2', /cannot compensate tool call t2 .*: it recorded no side effect/],
      ['t9', /cannot compensate tool call t9 .*: it has no recorded outcome/],
    ] as const) {
      const attempt = environment(task, `compensate:${toolCallId}`, 1).run(activities.compensateToolCall, { ...task, toolCallId })
      await expect(attempt).rejects.toThrow(why)
      await expect(attempt).rejects.toSatisfy((error) => error instanceof ApplicationFailure && error.nonRetryable === true && error.type === 'BROKEN_INVARIANT')
    }
    expect(await eventsOf(task)).toHaveLength(before.length)
    expect((await outbox(task.tenantId)).map((row) => row.kind)).toEqual(['notification'])
  })

  it('a compensation that fails is retried by Temporal, and its last attempt records ToolCompensationFailed', async () => {
    const { task, notified } = await notifiedTask(brokenRelay)
    const before = await eventsOf(task)
    await expect(environment(task, 'compensate:t1', 1).run(brokenRelay.compensateToolCall, { ...task, toolCallId: 't1' })).rejects.toThrow('mail relay down')
    expect(await eventsOf(task)).toHaveLength(before.length)

    const last = await environment(task, 'compensate:t1', MAX_ATTEMPTS).run(brokenRelay.compensateToolCall, { ...task, toolCallId: 't1' })
    expect(last).toEqual({ ok: false, errorCode: 'COMPENSATION_ERROR', eventId: outcomeEventId(workflowIdOf(task), RUN_ID, 'compensate:t1', 0) })
    const events = await eventsOf(task)
    const failed = events.filter((stored) => stored.event.type === 'ToolCompensationFailed')
    expect(failed).toHaveLength(1)
    expect(failed[0]!.event.data).toMatchObject({ toolCallId: 't1', sideEffectId: notified.sideEffectId, errorCode: 'COMPENSATION_ERROR', message: expect.stringContaining('mail relay down') })
    expect(foldTask(events.map((stored) => stored.event)).toolOutcomes.t1).toMatchObject({ compensation: { ok: false, errorCode: 'COMPENSATION_ERROR' } })
    expect((await outbox(task.tenantId)).map((row) => row.kind)).toEqual(['notification'])
  })

  it('retractNotification refuses another task’s notification and never retracts one twice, whatever the key', async () => {
    const { task, notified } = await notifiedTask()
    const ctx = retraction(task, notified.sideEffectId!, `key-${uniqueSuffix()}`)
    await expect(retractNotification(database.pool, { ...ctx, tenantId: 'intruder' })).rejects.toThrow(RetractionTargetError)
    await expect(retractNotification(database.pool, { ...ctx, sideEffectId: 'outbox:999999999' })).rejects.toThrow(/cannot retract outbox:999999999: no such outbox row/)
    const first = await retractNotification(database.pool, ctx)
    const second = await retractNotification(database.pool, { ...ctx, idempotencyKey: `key-${uniqueSuffix()}` })
    expect(second).toEqual(first)
    await expect(retractNotification(database.pool, { ...ctx, sideEffectId: first.compensationId })).rejects.toThrow(/it is a retraction, not a notification/)
    expect((await outbox(task.tenantId)).map((row) => row.kind)).toEqual(['notification', 'retraction'])
  })
})
