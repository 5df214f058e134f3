import { ApplicationFailure, WorkflowNotFoundError, type Client } from '@temporalio/client'
import { MockActivityEnvironment } from '@temporalio/testing'
import { describe, expect, it, vi } from 'vitest'
import { activityInterceptors } from '../../activities/activityInterceptors'
import { createBeginRun } from '../../activities/beginRun'
import { LinkedRunRefusedError, startLinkedRun } from '../../cli/runtime/linkedRuns'
import { ChainBrokenError } from '../../historian/checkpoints/chainUpTo'
import { makeCheckpointOfIntactChain } from '../../historian/checkpoints/signCheckpoint'
import type { Historian } from '../../historian/historian'
import { taskStreamName } from '../../historian/streams'
import { TaskEventFactory } from '../../dev/fixtures/eventFactory'
import { DATABASE_BACKENDS, historianPerTest } from '../support/databases'

const task = { tenantId: 'acme', taskId: 'task-a' }
const stream = taskStreamName(task.tenantId, task.taskId)
/** PlanCreated sits at revision 2 of appendTaskRun's stream; the boundary before `synthesize` comes after it. */
const PLAN_REVISION = 2
const BREAK = new RegExp(`hash chain of ${stream} breaks at revision ${PLAN_REVISION} \\(content_edited, event PlanCreated `)

/** One task run through the Historian: received(0), routed(1), planned(2), two tool outcomes(3, 4), synthesized(5), completed(6). */
async function appendTaskRun(historian: Historian): Promise<void> {
  const f = new TaskEventFactory(task.tenantId, task.taskId)
  const batches = [
    [f.received()],
    [f.routingInvoked(), f.planCreated(['search', 'fetch'])],
    [f.toolExecuted('call-1', 'search'), f.toolFailed('call-2', 'fetch')],
    [f.synthesisInvoked(), f.completed({ totalTokens: 970, totalCostUsd: 0.012, toolCallsSucceeded: 1, toolCallsFailed: 1 })],
  ]
  for (const batch of batches) await historian.appendToTask(task.tenantId, task.taskId, batch, await historian.readTask(task.tenantId, task.taskId))
}

/** A Temporal client whose workflow never ran before and whose `start` is a spy: nothing reaches a server. */
function fakeClient() {
  const start = vi.fn()
  const client = {
    workflow: {
      getHandle: (workflowId: string) => ({ describe: () => Promise.reject(new WorkflowNotFoundError('not found', workflowId, undefined)) }),
      start,
    },
  } as unknown as Client
  return { client, start }
}

/**
 * Nothing is signed, replayed, redriven or begun from a task stream whose hash chain does not verify up to the
 * checkpoint's revision: a PlanCreated tool call's parameters are edited by SQL, and each path refuses naming the break.
 */
describe.each(DATABASE_BACKENDS)('checkpoints and linked runs verify the chain first on $backend', ({ open }) => {
  const fixture = historianPerTest(open)
  const forgeToolCall = () =>
    fixture.database.pool.query(
      `update events set data = jsonb_set(data, '{toolCalls,0,parameters}', '{"query":"rm -rf /"}') where stream_name = $1 and stream_revision = $2`,
      [stream, PLAN_REVISION],
    )
  const trust = () => ({ store: fixture.store, keyRing: fixture.keyRing })
  const events = async () => (await fixture.historian.readTask(task.tenantId, task.taskId)).events

  it('signs a checkpoint of an intact chain, and of one broken only after its revision', async () => {
    await appendTaskRun(fixture.historian)
    const checkpoint = await makeCheckpointOfIntactChain(trust(), task, await events(), 'synthesize')
    expect(checkpoint.revision).toBeGreaterThanOrEqual(PLAN_REVISION)
    expect(checkpoint.revision).toBeLessThan(6)
    await fixture.database.pool.query(`update events set data = jsonb_set(data, '{totalTokens}', '1') where stream_name = $1 and stream_revision = 6`, [stream])
    await expect(makeCheckpointOfIntactChain(trust(), task, await events(), 'synthesize')).resolves.toEqual(checkpoint)
  })

  it('refuses to sign a checkpoint after a tool call was edited by SQL, naming the break', async () => {
    await appendTaskRun(fixture.historian)
    await forgeToolCall()
    const refused = await makeCheckpointOfIntactChain(trust(), task, await events(), 'synthesize').catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(ChainBrokenError)
    expect((refused as ChainBrokenError).chainBreak).toMatchObject({ streamName: stream, revision: String(PLAN_REVISION), kind: 'content_edited' })
    expect((refused as Error).message).toMatch(BREAK)
    expect((refused as Error).message).not.toContain('\n')
  })

  it.each(['replay', 'redrive'] as const)('refuses to start a %s from an edited stream, and starts nothing', async (reason) => {
    await appendTaskRun(fixture.historian)
    await forgeToolCall()
    const { client, start } = fakeClient()
    const refused = await startLinkedRun({ client, historian: fixture.historian, keyRing: fixture.keyRing }, { ...task, fromStep: 'synthesize', reason, requestedBy: 'alice' }).catch(
      (error: unknown) => error,
    )
    expect(refused).toBeInstanceOf(LinkedRunRefusedError)
    expect((refused as Error).message).toMatch(BREAK)
    expect(start).not.toHaveBeenCalled()
    expect(await events()).toHaveLength(7)
  })

  it('refuses a replay from a given checkpoint when the stream was edited after it was signed', async () => {
    await appendTaskRun(fixture.historian)
    const checkpoint = await makeCheckpointOfIntactChain(trust(), task, await events(), 'tools')
    await forgeToolCall()
    const { client, start } = fakeClient()
    const refused = await startLinkedRun(
      { client, historian: fixture.historian, keyRing: fixture.keyRing },
      { ...task, fromStep: 'tools', reason: 'replay', requestedBy: 'alice', checkpoint },
    ).catch((error: unknown) => error)
    expect((refused as Error).message).toMatch(BREAK)
    expect(start).not.toHaveBeenCalled()
  })

  it('beginRun refuses non-retryably when the stream was edited after the checkpoint was signed, and appends nothing', async () => {
    await appendTaskRun(fixture.historian)
    const checkpoint = await makeCheckpointOfIntactChain(trust(), task, await events(), 'synthesize')
    await forgeToolCall()
    const env = new MockActivityEnvironment(
      {
        workflowExecution: { workflowId: `agent-pipeline:${task.tenantId}:${task.taskId}`, runId: '22222222-2222-4333-8444-555555555555' },
        activityId: '1',
        attempt: 1,
        heartbeatTimeoutMs: 10_000,
        retryPolicy: { maximumAttempts: 4 },
      },
      { interceptors: activityInterceptors },
    )
    const beginRun = createBeginRun({ historian: fixture.historian, clock: () => new Date() })
    const run = { reason: 'replay' as const, fromStep: 'synthesize' as const, requestedBy: 'alice', overrides: { models: {}, promptVersions: {} }, checkpoint }
    const refused = await (env.run(beginRun, { ...task, run }) as Promise<unknown>).catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(ApplicationFailure)
    expect(refused).toMatchObject({ type: 'CHECKPOINT_INVALID', nonRetryable: true })
    expect((refused as Error).message).toMatch(BREAK)
    expect(await events()).toHaveLength(7)
  })
})
