import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FaultPlan } from '../../dev/faults/faultPlan'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { reconcileTasks } from '../../cli/runtime/reconcileTasks'
import { verifyRun } from '../../cli/runtime/verifyRun'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import type { TaskRef } from '../../workflows/api'
import { uniqueSuffix } from '../support/pipelineHarness'
import { supervisedWorker, type SupervisedWorker } from '../support/supervisedWorker'
import { waitUntil } from '../support/waitUntil'

const TOOL_CALLS = 64
const ITERATIONS = 8

/**
 * SIGKILLs a real worker process in the middle of a long loop: right after each TaskRunContinued was stored and before
 * Temporal heard of it (the moment just before continue-as-new), and from outside while the first planner call of a
 * continued run is in flight. The loop must still complete, with no model call made again once recorded, no duplicate
 * event, every tool call recorded once, and Temporal's histories of every run agreeing with the stream.
 */
describe('worker SIGKILL during a long loop, around continue-as-new (postgres server)', () => {
  const tenantId = `loopcrash_${uniqueSuffix()}`
  const task: TaskRef = { tenantId, taskId: 'checks' }
  const faults: FaultPlan = { rules: [{ target: 'run_continued', kind: 'crash_after_append', tenantId, taskId: task.taskId, attempts: [1] }] }
  let setup: SupervisedWorker

  beforeAll(async () => {
    setup = await supervisedWorker({ kind: 'postgres server', faults, scriptedLatencyMs: 300 })
  })
  afterAll(async () => {
    await setup?.close()
  })

  it('completes the loop with nothing lost, duplicated or called again', async () => {
    const { worker, client, database, taskQueue, ledgerPath, keyRing } = setup
    worker.start()
    const store = new PostgresEventStore(database)
    const historian = new Historian(store)
    const waitFor = <T>(what: string, found: () => T | Promise<T>) => waitUntil(what, found, { timeoutMs: 90_000, intervalMs: 10 })

    const handle = await startPipeline(
      client,
      {
        ...task,
        input: `Run ${TOOL_CALLS} checks over the ledger`,
        requestedBy: 'loop-crash-test',
        loop: { maxIterations: 30, toolCallsPerIteration: 8 },
        // About 5 iterations per run, so one hand-over. Each kill costs ~15 s: the heartbeat timeout, the restart, and the
        // dead worker's sticky task queue timing out before the workflow task moves to the shared queue.
        tuning: { heartbeatTimeoutMs: 2_000, retryInitialIntervalMs: 100, continueAsNewAtHistoryLength: 250 },
      },
      taskQueue,
    )

    // The fault kills the worker right after each hand-over was stored; the restarted worker records nothing twice
    // and continues as new. Then, from outside, SIGKILL it while the continued run's first planner call is in flight.
    await waitFor('the crash right after TaskRunContinued was stored', () => worker.unplannedExits.length >= 1)
    const firstContinued = await waitFor('the first TaskRunContinued', async () => {
      const stored = (await historian.readTask(tenantId, task.taskId)).events.find((event) => event.event.type === 'TaskRunContinued')
      return stored?.event.type === 'TaskRunContinued' && stored.event.data
    })
    const nextPlan = `plan:${firstContinued.iterationsDone + 1}`
    await waitFor(`the planner call ${nextPlan}`, () => readModelLedger(ledgerPath).some((call) => call.activityId === nextPlan))
    worker.kill('SIGKILL')

    const result = await handle.result()
    expect(result).toMatchObject({ ...task, status: 'completed', toolCalls: TOOL_CALLS, toolCallsFailed: 0 })

    const events = (await historian.readTask(tenantId, task.taskId)).events
    const continued = events.filter((stored) => stored.event.type === 'TaskRunContinued')
    const runIds = [...new Set(events.map((stored) => stored.event.metadata.runId))]
    expect(continued.length).toBeGreaterThanOrEqual(1)
    expect(runIds).toHaveLength(continued.length + 1)
    // One crash per hand-over (the fault) plus the one from outside.
    const kills = worker.unplannedExits.filter((exit) => exit.signal === 'SIGKILL')
    expect(kills.length).toBeGreaterThanOrEqual(continued.length + 1)

    // Every planned tool call recorded exactly once; every iteration planned once.
    const planned = events.flatMap((stored) => (stored.event.type === 'PlanIterationCreated' ? stored.event.data.toolCalls.map((call) => call.toolCallId) : []))
    const executed = events.flatMap((stored) => (stored.event.type === 'ToolCallExecuted' ? [stored.event.data.toolCallId] : []))
    expect(planned).toHaveLength(TOOL_CALLS)
    expect(executed.sort()).toEqual([...planned].sort())
    expect(events.filter((stored) => stored.event.type === 'PlanIterationCreated')).toHaveLength(ITERATIONS)

    const ledger = readModelLedger(ledgerPath)
    const verification = await verifyRun({ historian, pool: database.pool, tasks: [task], ledger, keyRing })
    expect(verification).toMatchObject({ duplicateOutcomes: 0, modelCallsRepeatedAfterCrash: 0, duplicateSideEffects: 0, tasksWithoutTerminalEvent: 0, chainsIntact: true })
    // Each planner iteration was recorded once; only the one killed mid-call may have been called twice.
    const callsPerPlan = new Map<string, number>()
    for (const call of ledger.filter((entry) => entry.role === 'planning')) callsPerPlan.set(call.activityId, (callsPerPlan.get(call.activityId) ?? 0) + 1)
    expect(callsPerPlan.size).toBe(ITERATIONS)
    expect([...callsPerPlan].filter(([activityId, count]) => count > 1 && activityId !== nextPlan)).toEqual([])

    const report = await reconcileTasks({ client, store }, [task])
    expect(report).toMatchObject({ workflowRunsChecked: runIds.length, findings: [] })
    await store.close()
  }, 240_000)
})
