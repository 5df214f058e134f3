import { execFileSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { CancelledFailure, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client'
import { expect, inject, it } from 'vitest'
import { startLinkedRun } from '../../../cli/runtime/linkedRuns'
import { startPipeline } from '../../../cli/runtime/pipelineClient'
import type { agentPipeline } from '../../../workflows'
import { findTemporalBinary } from '../../../cli/runtime/temporalBinary'
import { taskStreamName } from '../../../historian/streams'
import { pipelineHarness, uniqueSuffix, type PipelineHarness } from '../pipelineHarness'
import { waitUntil } from '../waitUntil'
import { HISTORY_SCENARIOS } from './scenarios'

const HISTORIES = fileURLToPath(new URL('.', import.meta.url))

/**
 * The scenarios to record: those named in ANNALIST_HISTORIES (comma-separated), else those without a saved file yet.
 * Saved histories are kept as they are: an old history is what proves that executions started by older workflow code
 * still replay, so re-recording one throws that proof away. A `recordedBefore` history is recorded once, when named
 * and not yet saved, with the workflow code from before its change, and never again.
 */
function scenariosToRecord() {
  const named = process.env.ANNALIST_HISTORIES?.split(',').map((name) => name.trim()).filter((name) => name.length > 0)
  const unknown = named?.filter((name) => !HISTORY_SCENARIOS.some((scenario) => scenario.name === name)) ?? []
  if (unknown.length > 0) throw new Error(`ANNALIST_HISTORIES names unknown scenarios: ${unknown.join(', ')}`)
  const saved = (name: string) => existsSync(path.join(HISTORIES, `${name}.json`))
  return HISTORY_SCENARIOS.filter((scenario) =>
    scenario.recordedBefore === undefined ? (named ? named.includes(scenario.name) : !saved(scenario.name)) : named?.includes(scenario.name) === true && !saved(scenario.name),
  )
}

/** The status a pipeline ended with; a pipeline Temporal cancelled ends in a CancelledFailure rather than a result. */
async function endStatus(handle: WorkflowHandle<typeof agentPipeline>): Promise<string> {
  try {
    return (await handle.result()).status
  } catch (error) {
    if (error instanceof WorkflowFailedError && error.cause instanceof CancelledFailure) return 'cancelled'
    throw error
  }
}

/** Waits until the task's stream records a side effect, then asks Temporal to cancel the pipeline. */
async function cancelAfterSideEffect(harness: PipelineHarness, handle: WorkflowHandle<typeof agentPipeline>, task: { tenantId: string; taskId: string }): Promise<void> {
  await waitUntil(
    `${task.taskId}: a recorded side effect`,
    async () =>
      (await harness.store.readStream(taskStreamName(task.tenantId, task.taskId)).catch(() => [])).some(
        (event) => event.type === 'ToolCallExecuted' && (event.data as { sideEffectId: string | null }).sideEffectId !== null,
      ),
    { timeoutMs: 30_000, intervalMs: 50 },
  )
  await handle.cancel()
}

// Records scenario histories from real runs: `npm run histories:record` (see docs/workflow-changes.md).
it('records the scenario histories', async () => {
  for (const scenario of scenariosToRecord()) {
    const harness = await pipelineHarness('pglite', { faults: scenario.faults, wrappers: scenario.wrappers })
    try {
      const tenantId = `replay_${uniqueSuffix()}`
      const handle = await startPipeline(harness.client, { tenantId, taskId: scenario.name, input: scenario.input, requestedBy: 'test', loop: scenario.loop, tuning: { retryInitialIntervalMs: 50, ...scenario.tuning } }, harness.taskQueue)
      const task = { tenantId, taskId: scenario.name }
      let status = await harness.withWorker(async () => {
        if (scenario.cancelAfterSideEffect) await cancelAfterSideEffect(harness, handle, task)
        return endStatus(handle)
      })
      if (scenario.replay) {
        const deps = { client: harness.client, historian: harness.historian, keyRing: harness.keyRing, taskQueue: harness.taskQueue }
        const linked = await startLinkedRun(deps, { tenantId, taskId: scenario.name, reason: 'replay', requestedBy: 'test', ...scenario.replay })
        status = await harness.withWorker(() => endStatus(harness.client.workflow.getHandle<typeof agentPipeline>(linked.workflowId, linked.runId)))
      }
      expect(status).toBe(scenario.expectedStatus ?? (scenario.faults || scenario.wrappers?.failingToolCalls ? 'failed' : 'completed'))
      // `temporal workflow show --output json` writes the proto3 JSON form Worker.runReplayHistories reads.
      const json = execFileSync(findTemporalBinary()!, ['workflow', 'show', '--workflow-id', handle.workflowId, '--address', inject('temporalAddress'), '--output', 'json'])
      writeFileSync(path.join(HISTORIES, `${scenario.name}.json`), json)
    } finally {
      await harness.close()
    }
  }
}, 120_000)
