import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { runAnnalistDev } from '../support/runCli'

/**
 * A small fault campaign through the real CLI: 2 tenants x 6 tasks with a fixed seed, every fault kind injected at least
 * once (workers and the projector SIGKILLed mid-work, the embedded database's process and the Temporal dev server killed
 * and restarted on the same data, model timeouts, malformed tool answers), and every invariant checked from its JSON.
 */
describe('annalist chaos', () => {
  it('injects every kind of fault and keeps every invariant', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'annalist-chaos-'))
    const jsonPath = path.join(dir, 'chaos.json')
    const run = await runAnnalistDev(['chaos', '--tenants', '2', '--tasks', '6', '--seed', '20260205', '--deadline', '150', '--json', jsonPath], { ANNALIST_DATA_DIR: dir })
    expect(run.stdout).toContain('seed 20260205')
    expect(run.stdout).toContain('repeat with: annalist chaos --seed 20260205')
    expect(run.stderr, run.stdout).not.toMatch(/annalist: /)
    const summary = JSON.parse(readFileSync(jsonPath, 'utf8'))
    expect(summary).toMatchObject({
      seed: 20260205,
      workflowsNotTerminal: 0,
      lostEvents: 0,
      duplicateEvents: 0,
      duplicateSideEffects: 0,
      modelCallsRepeated: 0,
      readModelsMatchRebuild: true,
      chainsIntact: true,
      counts: { tenants: 2, tasks: 12, otherReconcileFindings: 0 },
    })
    for (const kind of ['worker', 'projector', 'postgres', 'temporal', 'model', 'tool']) expect(summary.faultsInjected[kind], kind).toBeGreaterThanOrEqual(1)
    // No task of this campaign is meant to fail: the model faults stop before a step's last attempt, a malformed tool
    // answer is a recorded outcome, and an outage of the database or Temporal costs no attempt.
    expect(summary.counts).toMatchObject({ tasksCompleted: 12, tasksFailed: 0 })
    // The kills really happened: the supervisors restarted what was killed.
    expect(summary.counts.workerRestarts).toBeGreaterThanOrEqual(summary.faultsInjected.worker)
    expect(summary.counts.projectorRestarts).toBeGreaterThanOrEqual(summary.faultsInjected.projector)
    expect(run.code).toBe(0)
  }, 240_000)

  it('rejects an unknown fault kind with a one-line error before starting anything', async () => {
    const run = await runAnnalistDev(['chaos', '--faults', 'worker,meteor'])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/annalist: unknown fault kind "meteor" in --faults; choose from worker, projector, postgres, temporal, model, tool/)
    expect(run.stdout).toBe('')
  })
})
