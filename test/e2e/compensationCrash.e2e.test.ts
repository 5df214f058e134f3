import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FaultPlan } from '../../dev/faults/faultPlan'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { activityFactsOf } from '../../cli/runtime/temporalHistories'
import { verifyRun } from '../../cli/runtime/verifyRun'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import type { TaskRef } from '../../workflows/api'
import { uniqueSuffix } from '../support/pipelineHarness'
import { supervisedWorker, type SupervisedWorker } from '../support/supervisedWorker'
import { waitUntil } from '../support/waitUntil'

const NOTIFY = 'Notify the on-call team on slack that the nightly export finished'

/**
 * SIGKILLs a real worker process in the middle of a compensation - after the retraction went out but before its event
 * was appended - and right after ToolCallCompensated was appended but before Temporal heard of it. Either way the task
 * ends failed with exactly one retraction and one ToolCallCompensated, and its hash chain is intact.
 */
describe.each(['postgres server', 'embedded PGlite'] as const)('worker SIGKILL during a compensation (%s)', (kind) => {
  const tenant = `undo_${uniqueSuffix()}`
  const afterAppend: TaskRef = { tenantId: tenant, taskId: 'after-compensated-append' }
  const midway: TaskRef = { tenantId: tenant, taskId: 'after-retraction-sent' }
  const faults: FaultPlan = {
    rules: [
      { target: 'synthesis', kind: 'context_length', tenantId: tenant, attempts: [1, 2, 3, 4] },
      { target: 'compensation', kind: 'crash_after_append', tenantId: tenant, taskId: afterAppend.taskId, attempts: [1] },
      { target: 'compensation_sent', kind: 'crash_after_append', tenantId: tenant, taskId: midway.taskId, attempts: [1] },
    ],
  }
  let harness: SupervisedWorker

  beforeAll(async () => {
    harness = await supervisedWorker({ kind, faults })
  })
  afterAll(async () => harness?.close())

  it('leaves exactly one retraction and one ToolCallCompensated per task, with every chain intact', async () => {
    const { worker, database, client, taskQueue } = harness
    worker.start()
    const start = (task: TaskRef) =>
      startPipeline(client, { ...task, input: NOTIFY, requestedBy: 'crash-test', tuning: { heartbeatTimeoutMs: 2_000, retryInitialIntervalMs: 100 } }, taskQueue)
    const waitFor = (what: string, happened: () => boolean) => waitUntil(what, happened, { timeoutMs: 60_000, intervalMs: 10 })

    // One awkward moment at a time, so one crash does not cut short the attempt whose fault the other waits for.
    const appended = await start(afterAppend)
    await waitFor('the crash right after ToolCallCompensated was stored', () => worker.unplannedExits.length >= 1)
    const sent = await start(midway)
    await waitFor('the crash after the retraction was sent', () => worker.unplannedExits.length >= 2)

    const results = await Promise.all([appended, sent].map((handle) => handle.result()))
    expect(results.map((result) => [result.status, result.failedStep])).toEqual([
      ['failed', 'synthesize'],
      ['failed', 'synthesize'],
    ])
    expect(worker.unplannedExits.filter((exit) => exit.signal === 'SIGKILL').length).toBeGreaterThanOrEqual(2)

    const store = new PostgresEventStore(database)
    try {
      for (const [task, handle] of [
        [afterAppend, appended],
        [midway, sent],
      ] as const) {
        // Temporal retried the compensation activity: its first attempt died.
        const compensation = activityFactsOf(await handle.fetchHistory()).find((fact) => fact.activityId === 'compensate:t1')
        expect(compensation, `${task.taskId} ran compensate:t1`).toMatchObject({ state: 'completed' })
        expect(compensation!.attempt).toBeGreaterThanOrEqual(2)

        const outbox = await database.pool.query<{ kind: string; retracts_id: string | null; id: string }>(
          'select kind, retracts_id::text as retracts_id, id::text as id from tool_outbox where tenant_id = $1 and task_id = $2 order by tool_outbox.id',
          [task.tenantId, task.taskId],
        )
        expect(outbox.rows.map((row) => row.kind), task.taskId).toEqual(['notification', 'retraction'])
        expect(outbox.rows[1]!.retracts_id).toBe(outbox.rows[0]!.id)

        const events = await store.readStream(`tenant_${task.tenantId}-${task.taskId}`)
        const types = events.map((event) => event.type)
        expect(types.filter((type) => type === 'ToolCallCompensated'), task.taskId).toHaveLength(1)
        expect(types).not.toContain('ToolCompensationFailed')
        expect(types.indexOf('ToolCallCompensated')).toBeLessThan(types.indexOf('AgentTaskFailed'))
        expect(events.find((event) => event.type === 'ToolCallCompensated')!.data).toMatchObject({ compensationId: `outbox:${outbox.rows[1]!.id}` })
      }

      const verification = await verifyRun({
        historian: new Historian(store),
        pool: database.pool,
        tasks: [afterAppend, midway],
        ledger: readModelLedger(harness.ledgerPath),
        keyRing: harness.keyRing,
      })
      expect(verification).toMatchObject({ duplicateOutcomes: 0, duplicateSideEffects: 0, tasksWithoutTerminalEvent: 0, modelCallsRepeatedAfterCrash: 0, chainsIntact: true, brokenChains: [] })
    } finally {
      await store.close()
    }
  }, 180_000)
})
