import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FaultPlan } from '../../dev/faults/faultPlan'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { reconcileTasks } from '../../cli/runtime/reconcileTasks'
import { verifyRun } from '../../cli/runtime/verifyRun'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { isTerminalTaskEventType } from '../../historian/events'
import { Historian } from '../../historian/historian'
import { taskStreamName } from '../../historian/streams'
import type { TaskRef } from '../../workflows/api'
import { uniqueSuffix } from '../support/pipelineHarness'
import { runAnnalist } from '../support/runCli'
import { supervisedWorker, type SupervisedWorker } from '../support/supervisedWorker'
import { waitUntil } from '../support/waitUntil'

const NOTIFY = 'Notify the on-call team on slack that the nightly export finished'

/**
 * `annalist cancel` against a real worker process that is SIGKILLed in the middle of the cancel's compensation: once
 * after the retraction went out but before its event was stored, once right after ToolCallCompensated was stored. The
 * pipeline is in its tool phase (the notification t1 recorded, a search t2 hanging) when the operator cancels. Either
 * way: one retraction, one terminal event (AgentTaskCancelled, naming the operator), an intact chain, a clean reconcile.
 */
describe.each(['postgres server', 'embedded PGlite'] as const)('worker SIGKILL while a cancel compensates (%s)', (kind) => {
  const tenant = `stop_${uniqueSuffix()}`
  const midway: TaskRef = { tenantId: tenant, taskId: 'after-retraction-sent' }
  const afterAppend: TaskRef = { tenantId: tenant, taskId: 'after-compensated-append' }
  const faults: FaultPlan = {
    rules: [
      { target: 'tool:search_knowledge_base', kind: 'timeout', tenantId: tenant, attempts: [1, 2, 3, 4, 5] },
      { target: 'compensation_sent', kind: 'crash_after_append', tenantId: tenant, taskId: midway.taskId, attempts: [1] },
      { target: 'compensation', kind: 'crash_after_append', tenantId: tenant, taskId: afterAppend.taskId, attempts: [1] },
    ],
  }
  let harness: SupervisedWorker

  beforeAll(async () => {
    harness = await supervisedWorker({ kind, faults })
  })
  afterAll(async () => harness?.close())

  it('leaves one retraction and one AgentTaskCancelled per task, chains intact and reconcile clean', async () => {
    const { worker, database, client, taskQueue, cliEnv } = harness
    worker.start()
    const store = new PostgresEventStore(database)
    try {
      const sideEffectRecorded = (task: TaskRef) =>
        waitUntil(
          `${task.taskId}: the notification to be recorded`,
          async () => (await store.readStream(taskStreamName(task.tenantId, task.taskId)).catch(() => [])).some((event) => event.type === 'ToolCallExecuted'),
          { timeoutMs: 60_000, intervalMs: 50 },
        )
      const cancelled = []
      for (const [index, task] of [midway, afterAppend].entries()) {
        const handle = await startPipeline(client, { ...task, input: NOTIFY, requestedBy: 'crash-test', tuning: { heartbeatTimeoutMs: 2_000, retryInitialIntervalMs: 100 } }, taskQueue)
        await sideEffectRecorded(task)
        // One awkward moment at a time: the CLI waits for the cancel to be recorded, across the worker's SIGKILL and restart.
        const run = await runAnnalist(['cancel', '--tenant', task.tenantId, '--task', task.taskId, '--by', 'oncall-sre', '--reason', 'runaway notification'], cliEnv)
        expect(run, run.stderr).toMatchObject({ code: 0 })
        expect(run.stdout).toContain(`cancel of ${task.tenantId}/${task.taskId} by oncall-sre accepted`)
        expect(run.stdout).toMatch(/cancelled: AgentTaskCancelled [0-9a-f-]{36} \(requested by oncall-sre\)/)
        expect(worker.unplannedExits.filter((exit) => exit.signal === 'SIGKILL').length).toBe(index + 1)
        cancelled.push(await handle.result())
      }
      expect(cancelled.map((result) => [result.status, result.cancelledStep])).toEqual([
        ['cancelled', 'tools'],
        ['cancelled', 'tools'],
      ])

      for (const task of [midway, afterAppend]) {
        const outbox = await database.pool.query<{ kind: string; retracts_id: string | null; id: string }>(
          'select kind, retracts_id::text as retracts_id, id::text as id from tool_outbox where tenant_id = $1 and task_id = $2 order by tool_outbox.id',
          [task.tenantId, task.taskId],
        )
        expect(outbox.rows.map((row) => row.kind), task.taskId).toEqual(['notification', 'retraction'])
        expect(outbox.rows[1]!.retracts_id).toBe(outbox.rows[0]!.id)
        const events = await store.readStream(taskStreamName(task.tenantId, task.taskId))
        const types = events.map((event) => event.type)
        expect(types.filter((type) => type === 'ToolCallCompensated'), task.taskId).toHaveLength(1)
        expect(types.filter(isTerminalTaskEventType), task.taskId).toEqual(['AgentTaskCancelled'])
        expect(types.at(-1)).toBe('AgentTaskCancelled')
        expect(events.at(-1)!.data).toMatchObject({ requestedBy: 'oncall-sre', reason: 'runaway notification', source: 'annalist', sideEffectsCompensated: 1 })
      }

      const tasks = [midway, afterAppend]
      const verification = await verifyRun({ historian: new Historian(store), pool: database.pool, tasks, ledger: readModelLedger(harness.ledgerPath), keyRing: harness.keyRing })
      expect(verification).toMatchObject({ duplicateOutcomes: 0, duplicateSideEffects: 0, tasksWithoutTerminalEvent: 0, chainsIntact: true, brokenChains: [] })
      const report = await reconcileTasks({ client, store }, tasks)
      expect(report.findings).toEqual([])
      expect(report.tasksChecked).toBe(2)
    } finally {
      await store.close()
    }
  }, 240_000)
})
