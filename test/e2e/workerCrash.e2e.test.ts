import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FaultPlan } from '../../dev/faults/faultPlan'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { verifyRun } from '../../cli/runtime/verifyRun'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import { verifyChain } from '../../historian/integrity/verifyChain'
import type { TaskRef } from '../../workflows/api'
import { uniqueSuffix } from '../support/pipelineHarness'
import { supervisedWorker, type SupervisedWorker } from '../support/supervisedWorker'
import { waitUntil } from '../support/waitUntil'

/**
 * Kills real worker processes with SIGKILL at awkward moments - mid model call, and right after an outcome was stored but
 * before Temporal heard of it - and checks the promises: every pipeline completes, no event is duplicated, no side effect
 * is repeated, and no model call whose outcome was recorded is made again.
 */
describe.each(['postgres server', 'embedded PGlite'] as const)('worker SIGKILL and restart (%s)', (kind) => {
  const tenant = `crash_${uniqueSuffix()}`
  const midCall: TaskRef = { tenantId: tenant, taskId: 'mid-synthesis' }
  const afterPlan: TaskRef = { tenantId: tenant, taskId: 'after-plan-append' }
  const afterNotify: TaskRef = { tenantId: tenant, taskId: 'after-outbox-append' }
  const faults: FaultPlan = {
    rules: [
      { target: 'planning', kind: 'crash_after_append', tenantId: tenant, taskId: afterPlan.taskId, attempts: [1] },
      { target: 'tool:send_notification', kind: 'crash_after_append', tenantId: tenant, taskId: afterNotify.taskId, attempts: [1] },
    ],
  }
  let rig: SupervisedWorker

  beforeAll(async () => {
    rig = await supervisedWorker({ kind, faults, scriptedLatencyMs: 700, taskQueuePrefix: 'crash' })
  })
  afterAll(async () => rig?.close())

  it('completes every pipeline with no lost or duplicate events, no duplicate side effect and no repeated recorded model call', async () => {
    const { client, database, worker, ledgerPath, taskQueue, keyRing } = rig
    worker.start()
    const start = (task: TaskRef, input: string) =>
      startPipeline(client, { ...task, input, requestedBy: 'crash-test', tuning: { heartbeatTimeoutMs: 2_000, retryInitialIntervalMs: 100 } }, taskQueue)
    const waitFor = (what: string, happened: () => boolean) => waitUntil(what, happened, { timeoutMs: 60_000, intervalMs: 10 })

    // One awkward moment at a time: a crash in one pipeline must not cut short the attempt whose fault another waits for.
    const planned = await start(afterPlan, 'Calculate (1250 * 12) + 380 for the annual budget line')
    await waitFor('the crash right after the plan was stored', () => worker.unplannedExits.length >= 1)
    const notified = await start(afterNotify, 'Notify the on-call team on slack that the nightly export finished')
    await waitFor('the crash right after the notification was sent', () => worker.unplannedExits.length >= 2)
    const interrupted = await start(midCall, 'Search the knowledge base for the data retention policy')

    // SIGKILL the worker from outside while the synthesis call of one task is in flight.
    await waitFor('the synthesis call', () => readModelLedger(ledgerPath).some((call) => call.taskId === midCall.taskId && call.role === 'synthesis'))
    worker.kill('SIGKILL')

    const results = await Promise.all([interrupted, planned, notified].map((handle) => handle.result()))
    expect(results.map((result) => result.status)).toEqual(['completed', 'completed', 'completed'])

    const kills = worker.unplannedExits.filter((exit) => exit.signal === 'SIGKILL')
    expect(kills.length).toBeGreaterThanOrEqual(3)

    const store = new PostgresEventStore(database)
    const ledger = readModelLedger(ledgerPath)
    const verification = await verifyRun({ historian: new Historian(store), pool: database.pool, tasks: [midCall, afterPlan, afterNotify], ledger, keyRing })
    expect(verification).toMatchObject({ duplicateOutcomes: 0, modelCallsRepeatedAfterCrash: 0, duplicateSideEffects: 0, tasksWithoutTerminalEvent: 0 })

    // Every task's hash chain is intact although workers died mid-append and zombie attempts raced their retries.
    expect(verification).toMatchObject({ chainsIntact: true, brokenChains: [] })
    const chains = await verifyChain({ store, keyRing, tenantId: tenant })
    expect(chains).toMatchObject({ intact: true, streamsChecked: 3, brokenStreams: 0, firstBreak: null })
    expect(chains.eventsChecked).toBe(verification.eventsAppended)

    // The plan was stored before the crash: its retry found it and did not call the planner again.
    expect(ledger.filter((call) => call.taskId === afterPlan.taskId && call.role === 'planning')).toHaveLength(1)
    // The interrupted synthesis was never recorded, so it ran again - and was recorded once.
    expect(ledger.filter((call) => call.taskId === midCall.taskId && call.role === 'synthesis').length).toBeGreaterThanOrEqual(2)
    const midEvents = await store.readStream(`tenant_${tenant}-${midCall.taskId}`)
    expect(midEvents.filter((event) => event.type === 'SynthesisModelInvoked')).toHaveLength(1)
    // The notification reached the outbox once although the worker died right after sending it.
    const outbox = await database.pool.query('select count(*)::int as n from tool_outbox where tenant_id = $1 and task_id = $2', [tenant, afterNotify.taskId])
    expect(outbox.rows[0].n).toBe(1)
    const notifyEvents = (await store.readStream(`tenant_${tenant}-${afterNotify.taskId}`)).filter((event) => event.type === 'ToolCallExecuted')
    expect(notifyEvents.filter((event) => (event.data as { toolName: string }).toolName === 'send_notification')).toHaveLength(1)
    await store.close()
  }, 180_000)
})
