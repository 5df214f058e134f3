import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { FaultPlan } from '../../dev/faults/faultPlan'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { verifyRun } from '../../cli/runtime/verifyRun'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import type { TaskRef } from '../../workflows/api'
import { uniqueSuffix } from '../support/pipelineHarness'
import { eventsOfType } from '../support/storedEvents'
import { supervisedWorker, type SupervisedWorker } from '../support/supervisedWorker'

/**
 * A planner reply comes back malformed; the step records it (with its usage) and re-asks once. The worker is SIGKILLed
 * while that repair call is in flight. The next attempt must make the repair call, not the first call again: the first
 * call's cost is on record exactly once, and no recorded call is made twice.
 */
describe.each(['postgres server', 'embedded PGlite'] as const)('a SIGKILL during the repair call (%s)', (kind) => {
  const task: TaskRef = { tenantId: `repair_${uniqueSuffix()}`, taskId: 'malformed-plan' }
  const faults: FaultPlan = { rules: [{ target: 'planning', kind: 'malformed', tenantId: task.tenantId, taskId: task.taskId, attempts: [1] }] }
  let rig: SupervisedWorker

  beforeAll(async () => {
    rig = await supervisedWorker({ kind, faults, scriptedLatencyMs: 1_500, taskQueuePrefix: 'repair-crash' })
  })
  afterAll(async () => rig?.close())

  it('repairs on the next attempt, records the malformed call once, and makes no recorded call again', async () => {
    const { client, worker, ledgerPath, taskQueue, database, keyRing } = rig
    worker.start()
    const planningCalls = () => readModelLedger(ledgerPath).filter((call) => call.taskId === task.taskId && call.role === 'planning')
    const handle = await startPipeline(client, { ...task, input: 'Calculate (1250 * 12) + 380 for the budget', requestedBy: 'repair-test', tuning: { heartbeatTimeoutMs: 2_000, retryInitialIntervalMs: 100 } }, taskQueue)
    // The repair is the step's call index 1; its ledger line is written as it starts.
    await vi.waitFor(() => expect(planningCalls().some((call) => call.callIndex === 1)).toBe(true), { timeout: 60_000, interval: 10 })
    worker.kill('SIGKILL')
    expect((await handle.result()).status).toBe('completed')

    const store = new PostgresEventStore(database)
    try {
      const historian = new Historian(store, { keyRing })
      const { events } = await historian.readTask(task.tenantId, task.taskId)
      const failed = eventsOfType(events, 'PlanningModelFailed')
      expect(failed.map((stored) => [stored.event.data.errorCode, stored.event.data.callIndex, stored.event.data.willRepair, stored.event.metadata.attempt])).toEqual([['MODEL_OUTPUT_MALFORMED', 0, true, 1]])
      expect(failed[0]!.event.data.usage).toMatchObject({ reported: true })
      expect(failed[0]!.event.data.usage.outputTokens).toBeGreaterThan(0)
      const [plan] = eventsOfType(events, 'PlanCreated')
      expect(plan!.event.data).toMatchObject({ callIndex: 1, structuredOutput: { path: 'repaired' } })
      expect(plan!.event.metadata.attempt).toBeGreaterThan(1)

      // The first call was made once; the repair twice (the killed one was never recorded), and never after a record.
      expect(planningCalls().map((call) => [call.callIndex, call.attempt])).toEqual([[0, 1], [1, 1], [1, plan!.event.metadata.attempt]])
      const verification = await verifyRun({ historian, pool: database.pool, tasks: [task], ledger: readModelLedger(ledgerPath), keyRing })
      expect(verification.modelCallsRepeatedAfterCrash).toBe(0)
      expect(verification.chainsIntact).toBe(true)
    } finally {
      await store.close()
    }
  })
})
