import { CancelledFailure, WorkflowFailedError } from '@temporalio/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FaultRule } from '../../dev/faults/faultPlan'
import { CancelRefusedError, requestCancel } from '../../cli/runtime/cancelRequest'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { activityFactsOf } from '../../cli/runtime/temporalHistories'
import { isTerminalTaskEventType } from '../../historian/events'
import { verifyChain } from '../../historian/integrity/verifyChain'
import { taskStreamName } from '../../historian/streams'
import type { AgentPipelineInput, TaskRef } from '../../workflows/api'
import { pipelineHarness, uniqueSuffix, type PipelineHarness, type PipelineHarnessOptions } from '../support/pipelineHarness'
import { waitUntil } from '../support/waitUntil'

const NOTIFY = 'Notify the on-call team on slack that the nightly export finished'
/** Routes to notification: t1 send_notification, t2 calculator (2 + 3), t3 search. */
const NOTIFY_AND_ADD = 'Notify the on-call team on slack that 2 + 3 checks finished'
const SYNTHESIS_FAILS: FaultRule = { target: 'synthesis', kind: 'context_length', attempts: [1, 2, 3, 4] }

/** A harness, and what a test reads back of one task: its events, its outbox rows and the activities Temporal ran. */
function pipelineFixture(kind: 'postgres' | 'pglite', options: PipelineHarnessOptions) {
  let harness: PipelineHarness
  beforeAll(async () => {
    harness = await pipelineHarness(kind, options)
  })
  afterAll(async () => harness?.close())
  const start = (task: TaskRef, input: string, tuning: AgentPipelineInput['tuning'] = {}) =>
    startPipeline(harness.client, { ...task, input, requestedBy: 'test', tuning: { retryInitialIntervalMs: 50, heartbeatTimeoutMs: 2_000, ...tuning } }, harness.taskQueue)
  const events = (task: TaskRef) => harness.store.readStream(taskStreamName(task.tenantId, task.taskId))
  const outbox = async (task: TaskRef) =>
    (
      await harness.database.pool.query<{ id: string; kind: string; retracts_id: string | null; tool_call_id: string }>(
        'select id::text as id, kind, retracts_id::text as retracts_id, tool_call_id from tool_outbox where tenant_id = $1 and task_id = $2 order by id',
        [task.tenantId, task.taskId],
      )
    ).rows
  const waitForEvent = (task: TaskRef, what: string, matches: (event: { type: string; data: unknown }) => boolean) =>
    waitUntil(`${task.taskId}: ${what}`, async () => (await events(task).catch(() => [])).some(matches), { timeoutMs: 30_000, intervalMs: 50 })
  const chainIntact = async (task: TaskRef) => (await verifyChain({ store: harness.store, keyRing: harness.keyRing, ...task })).intact
  return { harness: () => harness, start, events, outbox, waitForEvent, chainIntact }
}

const sideEffectRecorded = (event: { type: string; data: unknown }) => event.type === 'ToolCallExecuted' && (event.data as { sideEffectId: string | null }).sideEffectId !== null

describe.each(['postgres', 'pglite'] as const)('recorded cancels (%s)', (kind) => {
  // The knowledge-base search hangs until it is cancelled: the pipeline sits in its tool phase after the notification.
  const fixture = pipelineFixture(kind, { faults: { rules: [{ target: 'tool:search_knowledge_base', kind: 'timeout', attempts: [1, 2, 3, 4, 5] }] } })
  const tenantId = `cancel_${uniqueSuffix()}`

  it('a cancel during the tool phase retracts the notification once and records who, why and where, last', async () => {
    const task = { tenantId, taskId: 'by-operator' }
    const handle = await fixture.start(task, NOTIFY)
    const outcome = await fixture.harness().withWorker(async () => {
      await fixture.waitForEvent(task, 'a recorded side effect', sideEffectRecorded)
      const accepted = await requestCancel(fixture.harness().client, task, { requestedBy: 'alice', reason: 'customer withdrew the request' })
      return accepted.outcome()
    })
    const result = await handle.result()
    expect(result).toMatchObject({ status: 'cancelled', cancelledStep: 'tools' })
    expect(outcome).toEqual({ status: 'cancelled', terminalEventId: result.terminalEventId, cancelledBy: 'alice' })

    const events = await fixture.events(task)
    const types = events.map((event) => event.type)
    // The hanging search settled (it learned of the cancel) before compensation; the cancel is the one ending, and last.
    expect(types.slice(-3)).toEqual(['ToolCallFailed', 'ToolCallCompensated', 'AgentTaskCancelled'])
    expect(types.filter(isTerminalTaskEventType)).toEqual(['AgentTaskCancelled'])
    expect(events.at(-1)).toMatchObject({
      eventId: result.terminalEventId,
      data: { cancelledStep: 'tools', source: 'annalist', requestedBy: 'alice', reason: 'customer withdrew the request', sideEffectsCompensated: 1, compensationsFailed: 0 },
    })
    expect((await fixture.outbox(task)).map((row) => [row.kind, row.tool_call_id])).toEqual([
      ['notification', 't1'],
      ['retraction', 't1'],
    ])
    expect(await fixture.chainIntact(task)).toBe(true)
    const activities = activityFactsOf(await handle.fetchHistory()).map((fact) => fact.activityId)
    expect(activities.slice(-3)).toEqual(['side-effects', 'compensate:t1', 'cancel'])
    expect((await handle.describe()).status.name).toBe('COMPLETED')
  })

  it("Temporal's own cancel is recorded too, with an unknown requester, and ends the execution cancelled", async () => {
    const task = { tenantId, taskId: 'from-temporal' }
    const handle = await fixture.start(task, NOTIFY)
    const failure = await fixture.harness().withWorker(async () => {
      await fixture.waitForEvent(task, 'a recorded side effect', sideEffectRecorded)
      await handle.cancel()
      return handle.result().then(
        () => undefined,
        (error: unknown) => error,
      )
    })
    expect(failure).toBeInstanceOf(WorkflowFailedError)
    expect((failure as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure)
    expect((await handle.describe()).status.name).toBe('CANCELLED')
    const events = await fixture.events(task)
    expect(events.map((event) => event.type).filter(isTerminalTaskEventType)).toEqual(['AgentTaskCancelled'])
    expect(events.at(-1)!.data).toMatchObject({ source: 'temporal', requestedBy: null, reason: null, cancelledStep: 'tools', sideEffectsCompensated: 1 })
    expect((await fixture.outbox(task)).map((row) => row.kind)).toEqual(['notification', 'retraction'])
  })

  it('refuses a cancel without a reason, and one for a pipeline that has ended, in one line each', async () => {
    const task = { tenantId, taskId: 'refused' }
    const handle = await fixture.start(task, 'Calculate 6 * 7')
    await fixture.harness().withWorker(async () => {
      await expect(requestCancel(fixture.harness().client, task, { requestedBy: 'bob', reason: '  ' })).rejects.toThrow(
        new CancelRefusedError(task, 'a cancel needs a reason: 1 to 1000 characters'),
      )
      await handle.result()
    })
    expect((await handle.result()).status).toBe('completed')
    await expect(requestCancel(fixture.harness().client, task, { requestedBy: 'bob', reason: 'too late' })).rejects.toThrow(
      new CancelRefusedError(task, 'its pipeline is not running (completed)'),
    )
    await expect(requestCancel(fixture.harness().client, { tenantId, taskId: 'never-started' }, { requestedBy: 'bob', reason: 'no such task' })).rejects.toThrow(
      /no pipeline was ever started for it$/,
    )
    expect((await fixture.events(task)).map((event) => event.type)).not.toContain('AgentTaskCancelled')
  })
})

describe.each(['postgres', 'pglite'] as const)('a fan-out with a call that fails for good (%s)', (kind) => {
  // Two lanes: the notification (t1) is slow, the calculation (t2) fails for good at once, the search (t3) waits its turn.
  const fixture = pipelineFixture(kind, { wrappers: { slowTools: { send_notification: 1_500 }, failingToolCalls: ['t2'] } })

  it('schedules nothing more, lets the notification in flight finish, retracts it, and only then records the failure', async () => {
    const task = { tenantId: `fanout_${uniqueSuffix()}`, taskId: 'drained' }
    const handle = await fixture.start(task, NOTIFY_AND_ADD, { toolConcurrency: 2 })
    const result = await fixture.harness().withWorker(() => handle.result())
    expect(result).toMatchObject({ status: 'failed', failedStep: 'tools', errorCode: 'BROKEN_INVARIANT' })

    const activities = activityFactsOf(await handle.fetchHistory())
    expect(activities.map((fact) => fact.activityId)).not.toContain('tool:t3')
    expect(activities.find((fact) => fact.activityId === 'tool:t1')).toMatchObject({ state: 'completed' })
    expect(activities.map((fact) => fact.activityId).slice(-3)).toEqual(['side-effects', 'compensate:t1', 'fail'])
    const types = (await fixture.events(task)).map((event) => event.type)
    expect(types.slice(-3)).toEqual(['ToolCallExecuted', 'ToolCallCompensated', 'AgentTaskFailed'])
    expect((await fixture.outbox(task)).map((row) => [row.kind, row.tool_call_id])).toEqual([
      ['notification', 't1'],
      ['retraction', 't1'],
    ])
    expect(await fixture.chainIntact(task)).toBe(true)
  })
})

describe('side effects compensated since recorded compensations (postgres)', () => {
  const fixture = pipelineFixture('postgres', { faults: { rules: [SYNTHESIS_FAILS] }, wrappers: { malformedResults: ['send_notification'] } })

  it('a failed tool call that still left a side effect is compensated when its task fails', async () => {
    const task = { tenantId: `malformed_${uniqueSuffix()}`, taskId: 'failed-call' }
    const handle = await fixture.start(task, NOTIFY)
    expect(await fixture.harness().withWorker(() => handle.result())).toMatchObject({ status: 'failed', failedStep: 'synthesize' })
    const events = await fixture.events(task)
    const failedCall = events.find((event) => event.type === 'ToolCallFailed')!
    const outbox = await fixture.outbox(task)
    expect(failedCall.data).toMatchObject({ toolCallId: 't1', errorCode: 'TOOL_RESPONSE_MALFORMED', sideEffectId: `outbox:${outbox[0]!.id}` })
    expect(outbox.map((row) => [row.kind, row.retracts_id])).toEqual([
      ['notification', null],
      ['retraction', outbox[0]!.id],
    ])
    expect(events.map((event) => event.type).slice(-2)).toEqual(['ToolCallCompensated', 'AgentTaskFailed'])
  })
})

describe('a compensation that never answers (pglite)', () => {
  const fixture = pipelineFixture('pglite', { faults: { rules: [SYNTHESIS_FAILS] }, wrappers: { stuckCompensations: ['send_notification'] } })

  it('is recorded as ToolCompensationFailed (COMPENSATION_TIMEOUT) once Temporal gives up on its last attempt', async () => {
    const task = { tenantId: `stuck_${uniqueSuffix()}`, taskId: 'timed-out' }
    const handle = await fixture.start(task, NOTIFY, { toolTimeoutMs: 1_000 })
    expect(await fixture.harness().withWorker(() => handle.result())).toMatchObject({ status: 'failed', failedStep: 'synthesize' })
    const activities = activityFactsOf(await handle.fetchHistory())
    expect(activities.find((fact) => fact.activityId === 'compensate:t1')).toMatchObject({ state: 'timed_out' })
    const events = await fixture.events(task)
    expect(events.map((event) => event.type).slice(-2)).toEqual(['ToolCompensationFailed', 'AgentTaskFailed'])
    // The last attempt's own late failure found the workflow's record and recorded nothing more.
    expect(events.filter((event) => event.type === 'ToolCompensationFailed')).toHaveLength(1)
    expect(events.at(-2)).toMatchObject({ data: { toolCallId: 't1', toolName: 'send_notification', errorCode: 'COMPENSATION_TIMEOUT' }, metadata: { activityId: 'compensation-failed:t1' } })
    expect((await fixture.outbox(task)).map((row) => row.kind)).toEqual(['notification'])
    expect(await fixture.chainIntact(task)).toBe(true)
  }, 60_000)
})
