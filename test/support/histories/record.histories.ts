import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, inject, it } from 'vitest'
import { startPipeline } from '../../../cli/runtime/pipelineClient'
import { findTemporalBinary } from '../../../cli/runtime/temporalBinary'
import { pipelineHarness, uniqueSuffix } from '../pipelineHarness'
import { HISTORY_SCENARIOS } from './scenarios'

const HISTORIES = fileURLToPath(new URL('.', import.meta.url))

// Re-records the saved histories from real runs: `npm run histories:record`, after an intended (patched()) workflow change.
it('records the scenario histories', async () => {
  for (const scenario of HISTORY_SCENARIOS) {
    const harness = await pipelineHarness('pglite', { faults: scenario.faults })
    try {
      const tenantId = `replay_${uniqueSuffix()}`
      const handle = await startPipeline(harness.client, { tenantId, taskId: scenario.name, input: scenario.input, requestedBy: 'test', tuning: { retryInitialIntervalMs: 50 } }, harness.taskQueue)
      const result = await harness.withWorker(() => handle.result())
      expect(result.status).toBe(scenario.faults ? 'failed' : 'completed')
      // `temporal workflow show --output json` writes the proto3 JSON form Worker.runReplayHistories reads.
      const json = execFileSync(findTemporalBinary()!, ['workflow', 'show', '--workflow-id', handle.workflowId, '--address', inject('temporalAddress'), '--output', 'json'])
      writeFileSync(path.join(HISTORIES, `${scenario.name}.json`), json)
    } finally {
      await harness.close()
    }
  }
}, 120_000)
