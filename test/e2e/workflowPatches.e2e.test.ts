import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { bundleWorkflowCode, Worker } from '@temporalio/worker'
import { describe, expect, it } from 'vitest'
import { WORKFLOWS_PATH } from '../../cli/runtime/workflowBundle'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { activityFactsOf } from '../../cli/runtime/temporalHistories'
import { HISTORY_SCENARIOS } from '../support/histories/scenarios'
import { pipelineHarness, sharedWorkflowBundle, uniqueSuffix } from '../support/pipelineHarness'

const HISTORIES = fileURLToPath(new URL('../support/histories', import.meta.url))
const PATCH = 'compensate-side-effects'
const notifiedThenFailed = HISTORY_SCENARIOS.find((scenario) => scenario.name === 'notified-then-failed-compensated')!

interface SavedHistory {
  events: {
    eventType: string
    markerRecordedEventAttributes?: { markerName?: string; details?: Record<string, { payloads?: { data?: string }[] }> }
    activityTaskScheduledEventAttributes?: { activityId?: string }
  }[]
}

const load = (name: string) => JSON.parse(readFileSync(path.join(HISTORIES, `${name}.json`), 'utf8')) as SavedHistory
const scheduled = (history: SavedHistory) => history.events.flatMap((event) => event.activityTaskScheduledEventAttributes?.activityId ?? [])
/** The patch IDs the history's markers record (the SDK records patched() as a `core_patch` marker with the ID in its details). */
const patchMarkers = (history: SavedHistory) =>
  history.events
    .filter((event) => event.markerRecordedEventAttributes?.markerName === 'core_patch')
    .map((event) => JSON.parse(Buffer.from(event.markerRecordedEventAttributes!.details!['patch-data']!.payloads![0]!.data!, 'base64').toString('utf8')) as { id: string })
    .map((data) => data.id)

/**
 * The workflow bundle with patched() replaced by a constant that records no marker (a shim in place of
 * @temporalio/workflow). Answering false, it issues the commands the code before the change issued (the guarded branch is
 * the only difference); answering true, it is the change made WITHOUT a patch.
 */
async function bundleWithPatchedAlways(answer: boolean) {
  const dir = mkdtempSync(path.join(tmpdir(), 'annalist-patch-shim-'))
  const real = createRequire(import.meta.url).resolve('@temporalio/workflow')
  const shim = path.join(dir, 'workflowShim.js')
  writeFileSync(shim, `export * from ${JSON.stringify(real)}\nexport function patched() { return ${answer} }\n`)
  return bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    logger: { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: console.error },
    webpackConfigHook: (config) => ({ ...config, resolve: { ...config.resolve, alias: { ...(config.resolve?.alias as object), '@temporalio/workflow$': shim } } }),
  })
}

describe(`the ${PATCH} patch (docs/workflow-changes.md)`, () => {
  it('keeps one history recorded before the change and one after, both in the replayed set', () => {
    const names = HISTORY_SCENARIOS.map((scenario) => scenario.name)
    expect(names).toEqual(expect.arrayContaining(['notified-then-failed-before-compensation', 'notified-then-failed-compensated']))
    expect(HISTORY_SCENARIOS.find((scenario) => scenario.name === 'notified-then-failed-before-compensation')?.recordedBefore).toBe(PATCH)

    // Before: the task failed after a notification, and no compensation was scheduled and no patch marker recorded.
    const before = load('notified-then-failed-before-compensation')
    expect(scheduled(before)).toEqual(['receive', 'route', 'plan', 'tool:t1', 'tool:t2', 'synthesize', 'fail'])
    expect(patchMarkers(before)).toEqual([])
    // After: the same failure records the patch marker, then compensates the notification before failTask.
    const after = load('notified-then-failed-compensated')
    expect(scheduled(after)).toEqual(['receive', 'route', 'plan', 'tool:t1', 'tool:t2', 'synthesize', 'compensate:t1', 'fail'])
    expect(patchMarkers(after)).toEqual([PATCH])
  })

  it('replays both through the patched workflow: patched() is false for the old execution and true for the new one', async () => {
    const histories = ['notified-then-failed-before-compensation', 'notified-then-failed-compensated'].map((name) => ({ workflowId: name, history: load(name) }))
    const results = []
    for await (const result of Worker.runReplayHistories({ workflowBundle: await sharedWorkflowBundle() }, histories)) results.push([result.workflowId, result.error?.message ?? 'ok'])
    expect(results).toEqual([
      ['notified-then-failed-before-compensation', 'ok'],
      ['notified-then-failed-compensated', 'ok'],
    ])
  })

  it('an execution begun by the old code during a rolling deploy replays through the patched code, and breaks the unguarded one', async () => {
    // Old workflow code (no compensation) runs while workers already have the new activities, whose results say which
    // tool calls are compensable: the situation patched() exists for. Record such an execution for real.
    const oldCode = await bundleWithPatchedAlways(false)
    const harness = await pipelineHarness('pglite', { workflowBundle: oldCode, faults: notifiedThenFailed.faults })
    let history: unknown
    try {
      const handle = await startPipeline(harness.client, { tenantId: `deploy_${uniqueSuffix()}`, taskId: 'rolling', input: notifiedThenFailed.input, requestedBy: 'test', tuning: { retryInitialIntervalMs: 50 } }, harness.taskQueue)
      expect(await harness.withWorker(() => handle.result())).toMatchObject({ status: 'failed', failedStep: 'synthesize' })
      history = await handle.fetchHistory()
    } finally {
      await harness.close()
    }
    const activities = activityFactsOf(history as Parameters<typeof activityFactsOf>[0])
    expect(activities.map((fact) => fact.activityId)).toEqual(['receive', 'route', 'plan', 'tool:t1', 'tool:t2', 'synthesize', 'fail'])

    // The patched code replays it: no marker in the history, so patched() is false and failTask follows synthesis as before.
    await expect(Worker.runReplayHistory({ workflowBundle: await sharedWorkflowBundle() }, history)).resolves.toBeUndefined()
    // The same change without the guard schedules compensate:t1 where the history has failTask: a worker running that
    // code would wedge every such execution still open when it was deployed.
    const unguarded = await bundleWithPatchedAlways(true)
    await expect(Worker.runReplayHistory({ workflowBundle: unguarded }, history)).rejects.toThrow(/[Nn]ondeterminism|[Dd]eterminism/)
    // Since compensation reads the side effects from the stream (compensate-recorded-side-effects), every failure schedules
    // that read first: unguarded, even an old execution whose tool calls reported nothing compensable would wedge.
    await expect(Worker.runReplayHistory({ workflowBundle: unguarded }, load('notified-then-failed-before-compensation'))).rejects.toThrow(/[Nn]ondeterminism|[Dd]eterminism/)
  }, 180_000)
})

describe('the recorded-cancel and drain-fan-out patches (docs/workflow-changes.md)', () => {
  const cases = [
    { before: 'cancelled-during-tools-before-recorded-cancel', after: 'cancelled-during-tools-recorded', patch: 'recorded-cancel' },
    { before: 'fan-out-failed-before-drain', after: 'fan-out-failed-drained', patch: 'drain-fan-out' },
  ]

  it('keeps a history of each from before its change, which the change without its guard could not replay', async () => {
    const unguarded = await bundleWithPatchedAlways(true)
    for (const { before, patch } of cases) {
      expect(HISTORY_SCENARIOS.find((scenario) => scenario.name === before)?.recordedBefore).toBe(patch)
      expect(patchMarkers(load(before))).not.toContain(patch)
      await expect(Worker.runReplayHistory({ workflowBundle: unguarded }, load(before)), before).rejects.toThrow(/[Nn]ondeterminism|[Dd]eterminism/)
    }
  }, 120_000)

  it('records the patch markers and the new commands in the histories recorded after the change', () => {
    for (const { after, patch } of cases) expect(patchMarkers(load(after))).toContain(patch)
    // Before: nothing ended the cancelled run; after: side effects read from the stream, t1 compensated, the cancel recorded.
    expect(scheduled(load('cancelled-during-tools-before-recorded-cancel'))).toEqual(['receive', 'route', 'plan', 'tool:t1', 'tool:t2'])
    expect(scheduled(load('cancelled-during-tools-recorded'))).toEqual(['receive', 'route', 'plan', 'tool:t1', 'tool:t2', 'side-effects', 'compensate:t1', 'cancel'])
    // Before: the failure was recorded while t1 still ran; after: t1 settled, then compensated, and t3 never started.
    expect(scheduled(load('fan-out-failed-before-drain'))).toEqual(['receive', 'route', 'plan', 'tool:t1', 'tool:t2', 'fail'])
    expect(scheduled(load('fan-out-failed-drained'))).toEqual(['receive', 'route', 'plan', 'tool:t1', 'tool:t2', 'side-effects', 'compensate:t1', 'fail'])
  })
})
