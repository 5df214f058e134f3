import { execFileSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, inject, it } from 'vitest'
import { startLinkedRun } from '../../../cli/runtime/linkedRuns'
import { startPipeline } from '../../../cli/runtime/pipelineClient'
import type { agentPipeline } from '../../../workflows'
import { findTemporalBinary } from '../../../cli/runtime/temporalBinary'
import { pipelineHarness, uniqueSuffix } from '../pipelineHarness'
import { HISTORY_SCENARIOS } from './scenarios'

const HISTORIES = fileURLToPath(new URL('.', import.meta.url))

/**
 * The scenarios to record: those named in ANNALIST_HISTORIES (comma-separated), else those without a saved file yet.
 * Saved histories are kept as they are: an old history is what proves that executions started by older workflow code
 * still replay, so re-recording one throws that proof away. A `recordedBefore` history is never re-recorded.
 */
function scenariosToRecord() {
  const named = process.env.ANNALIST_HISTORIES?.split(',').map((name) => name.trim()).filter((name) => name.length > 0)
  const unknown = named?.filter((name) => !HISTORY_SCENARIOS.some((scenario) => scenario.name === name)) ?? []
  if (unknown.length > 0) throw new Error(`ANNALIST_HISTORIES names unknown scenarios: ${unknown.join(', ')}`)
  return HISTORY_SCENARIOS.filter(
    (scenario) => scenario.recordedBefore === undefined && (named ? named.includes(scenario.name) : !existsSync(path.join(HISTORIES, `${scenario.name}.json`))),
  )
}

// Records scenario histories from real runs: `npm run histories:record` (see docs/workflow-changes.md).
it('records the scenario histories', async () => {
  for (const scenario of scenariosToRecord()) {
    const harness = await pipelineHarness('pglite', { faults: scenario.faults })
    try {
      const tenantId = `replay_${uniqueSuffix()}`
      const handle = await startPipeline(harness.client, { tenantId, taskId: scenario.name, input: scenario.input, requestedBy: 'test', loop: scenario.loop, tuning: { retryInitialIntervalMs: 50, ...scenario.tuning } }, harness.taskQueue)
      let result = await harness.withWorker(() => handle.result())
      if (scenario.replay) {
        const deps = { client: harness.client, historian: harness.historian, keyRing: harness.keyRing, taskQueue: harness.taskQueue }
        const linked = await startLinkedRun(deps, { tenantId, taskId: scenario.name, reason: 'replay', requestedBy: 'test', ...scenario.replay })
        result = await harness.withWorker(() => harness.client.workflow.getHandle<typeof agentPipeline>(linked.workflowId, linked.runId).result())
      }
      expect(result.status).toBe(scenario.faults ? 'failed' : 'completed')
      // `temporal workflow show --output json` writes the proto3 JSON form Worker.runReplayHistories reads.
      const json = execFileSync(findTemporalBinary()!, ['workflow', 'show', '--workflow-id', handle.workflowId, '--address', inject('temporalAddress'), '--output', 'json'])
      writeFileSync(path.join(HISTORIES, `${scenario.name}.json`), json)
    } finally {
      await harness.close()
    }
  }
}, 120_000)
