import { Client, Connection } from '@temporalio/client'
import { NativeConnection } from '@temporalio/worker'
import { describe, expect, inject, it } from 'vitest'
import type { FaultPlan } from '../../dev/faults/faultPlan'
import { ModelClient } from '../../activities/models/modelClient'
import { modelsFromConfig } from '../../activities/models/modelsFromConfig'
import { createActivities } from '../../activities/pipelineActivities'
import { createDefaultTools } from '../../activities/tools/registry'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import { reconcileTasks } from '../../cli/runtime/reconcileTasks'
import { listTasks } from '../../cli/runtime/temporalHistories'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { createPipelineWorker } from '../../cli/runtime/pipelineWorker'
import { verifyRun } from '../../cli/runtime/verifyRun'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import type { TaskDeadLettered, TaskRunStarted } from '../../historian/events'
import { Historian } from '../../historian/historian'
import { defaultProjections } from '../../projections/defaultProjections'
import { rebuildAndCompare } from '../../projections/rebuild'
import { ProjectionRunner } from '../../projections/runner'
import type { TaskDeadLetter } from '../../projections/taskDeadLetters/query'
import { pipelineWorkflowId, type TaskRef } from '../../workflows/api'
import { freshPgliteDatabase, randomKeyRing } from '../support/databases'
import { sharedWorkflowBundle, uniqueSuffix } from '../support/pipelineHarness'
import { eventsOfType } from '../support/storedEvents'
import { supervisedWorkerSuite } from '../support/supervisedWorkerSuite'

type DeadLetterJson = Omit<TaskDeadLetter, 'position' | 'deadLetteredAt' | 'redrivenAt'> & { position: string; deadLetteredAt: string; redrivenAt: string | null }

const INPUT = 'Search the knowledge base for the data retention policy'

/**
 * Dead letters and redrive against real parts: a real worker process on the Temporal dev server, the PostgreSQL server
 * or PGlite (served over the wire protocol to the worker and CLI processes), the scripted model with injected faults, and the real CLI. A synthesis model that times out on every attempt
 * dead-letters its task (and the worker is SIGKILLed right after the dead letter is stored); a context-length failure
 * does not; after the worker restarts without the fault, `redrive` completes the task as a linked run that calls only
 * the synthesis model again.
 */
describe.each(['postgres server', 'embedded PGlite'] as const)('dead letters and redrive (%s)', (kind) => {
  const tenant = `dl_${uniqueSuffix()}`
  const otherTenant = `dlother_${uniqueSuffix()}`
  const exhausted: TaskRef = { tenantId: tenant, taskId: 'exhausted' }
  const tooLong: TaskRef = { tenantId: tenant, taskId: 'too-long' }
  const otherExhausted: TaskRef = { tenantId: otherTenant, taskId: 'exhausted' }
  const everyAttempt = [1, 2, 3, 4]
  const faults: FaultPlan = {
    rules: [
      { target: 'synthesis', kind: 'timeout', taskId: 'exhausted', attempts: everyAttempt },
      { target: 'synthesis', kind: 'context_length', tenantId: tenant, taskId: tooLong.taskId, attempts: [1] },
      // Die right after the dead letter is stored, before Temporal hears that failTask completed.
      { target: 'dead_letter', kind: 'crash_after_append', tenantId: tenant, taskId: exhausted.taskId, attempts: [1] },
    ],
  }

  const suite = supervisedWorkerSuite({ kind, faults, scriptedLatencyMs: 20, modelTimeoutMs: 400, taskQueuePrefix: 'dl' })
  const { cli, eventsOf } = suite
  const ofType = eventsOfType
  const catchUp = () => new ProjectionRunner({ store: suite.store, pool: suite.rig.database.pool, projections: defaultProjections() }).catchUp()
  const listed = async (args: readonly string[]): Promise<DeadLetterJson[]> => {
    const run = await cli(['dead-tasks', 'list', ...args, '--format', 'json'])
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    return JSON.parse(run.stdout) as DeadLetterJson[]
  }

  const start = (task: TaskRef) =>
    startPipeline(suite.rig.client, { ...task, input: INPUT, requestedBy: 'dead-letter-test', tuning: { heartbeatTimeoutMs: 2_000, retryInitialIntervalMs: 100 } }, suite.rig.taskQueue)

  it('dead-letters a task whose synthesis timed out on every attempt, with every attempt recorded, exactly once although the worker died right after', async () => {
    // One at a time, so that the crash cannot cut short another task's attempts.
    const [other, long] = await Promise.all([start(otherExhausted), start(tooLong)])
    expect(await other.result()).toMatchObject({ status: 'failed', failedStep: 'synthesize', errorCode: 'MODEL_TIMEOUT' })
    expect(await long.result()).toMatchObject({ status: 'failed', failedStep: 'synthesize', errorCode: 'MODEL_CONTEXT_LENGTH_EXCEEDED' })
    expect(suite.rig.worker.unplannedExits).toEqual([])

    const result = await (await start(exhausted)).result()
    expect(result).toMatchObject({ status: 'failed', failedStep: 'synthesize', errorCode: 'MODEL_TIMEOUT' })
    // The worker was SIGKILLed right after appending the dead letter; its restarted successor finished the workflow.
    expect(suite.rig.worker.unplannedExits.map((exit) => exit.signal)).toEqual(['SIGKILL'])

    const events = await eventsOf(exhausted)
    const failedTask = ofType(events, 'AgentTaskFailed')
    const letters = ofType(events, 'TaskDeadLettered')
    expect(failedTask).toHaveLength(1)
    expect(letters).toHaveLength(1)
    expect(events.at(-1)!.eventId).toBe(letters[0]!.eventId)
    expect(events.at(-2)!.eventId).toBe(failedTask[0]!.eventId)
    expect(letters[0]!.event.metadata.causationId).toBe(failedTask[0]!.eventId)

    const attempts = ofType(events, 'SynthesisModelFailed')
    expect(attempts.map((stored) => [stored.event.metadata.attempt, stored.event.data.errorCode, stored.event.data.willRetry])).toEqual([
      [1, 'MODEL_TIMEOUT', true],
      [2, 'MODEL_TIMEOUT', true],
      [3, 'MODEL_TIMEOUT', true],
      [4, 'MODEL_TIMEOUT', false],
    ])
    const received = ofType(events, 'AgentTaskReceived')[0]!
    const letter: TaskDeadLettered['data'] = letters[0]!.event.data
    expect(letter).toEqual({
      failedStep: 'synthesize',
      errorCode: 'MODEL_TIMEOUT',
      message: attempts[3]!.event.data.message,
      attempts: 4,
      // modelStep turns the last retryable failure into a non-retryable one: exhaustion is read from the recorded attempts.
      retryState: 'NON_RETRYABLE_FAILURE',
      failures: attempts.map((stored) => ({
        eventId: stored.eventId,
        attempt: stored.event.metadata.attempt,
        errorCode: 'MODEL_TIMEOUT',
        message: stored.event.data.message,
        occurredAt: stored.event.metadata.occurredAt,
      })),
      runId: received.event.metadata.runId,
    })
    expect(letter.message).toMatch(/timed out after 400 ms/)

    // Each synthesis attempt called the model once; nothing was lost, duplicated or repeated, and the chain is intact.
    const ledger = readModelLedger(suite.rig.ledgerPath)
    expect(ledger.filter((call) => call.tenantId === tenant && call.taskId === exhausted.taskId && call.role === 'synthesis').map((call) => call.attempt)).toEqual(everyAttempt)
    const verification = await verifyRun({ historian: suite.historian, pool: suite.rig.database.pool, tasks: [exhausted, tooLong, otherExhausted], ledger, keyRing: suite.rig.keyRing })
    expect(verification).toMatchObject({ duplicateOutcomes: 0, modelCallsRepeatedAfterCrash: 0, tasksWithoutTerminalEvent: 0, chainsIntact: true })

    // Temporal's history agrees with the stream: failTask's two outcome events are one outcome, not a duplicate.
    const reconciled = await reconcileTasks({ client: suite.rig.client, store: suite.store }, await listTasks({ client: suite.rig.client, store: suite.store }, { tenantId: tenant }))
    expect(reconciled).toMatchObject({ tasksChecked: 2, findings: [] })

    // A failure no retry could fix is not dead-lettered; the other tenant's exhausted task is.
    const long2 = await eventsOf(tooLong)
    expect(ofType(long2, 'AgentTaskFailed').map((stored) => stored.event.data.errorCode)).toEqual(['MODEL_CONTEXT_LENGTH_EXCEEDED'])
    expect(ofType(long2, 'TaskDeadLettered')).toEqual([])
    expect(ofType(await eventsOf(otherExhausted), 'TaskDeadLettered').map((stored) => stored.event.data.errorCode)).toEqual(['MODEL_TIMEOUT'])
  }, 150_000)

  it('lists dead-lettered tasks with `dead-tasks list`: every tenant, or only the one named', async () => {
    await catchUp()
    const mine = await listed(['--tenant', tenant])
    expect(mine.map((letter) => [letter.tenantId, letter.taskId, letter.failedStep, letter.errorCode, letter.attempts, letter.status, letter.redrivenBy])).toEqual([
      [tenant, 'exhausted', 'synthesize', 'MODEL_TIMEOUT', 4, 'open', null],
    ])
    expect(mine[0]!.failures.map((failure) => failure.attempt)).toEqual([1, 2, 3, 4])
    // In the order they were dead-lettered: the other tenant's task ran first.
    expect((await listed([])).map((letter) => [letter.tenantId, letter.taskId])).toEqual([
      [otherTenant, 'exhausted'],
      [tenant, 'exhausted'],
    ])
    expect(await listed(['--tenant', tenant, '--status', 'redriven'])).toEqual([])

    const table = await cli(['dead-tasks', 'list', '--tenant', tenant])
    expect(table.code).toBe(0)
    expect(table.stdout).toMatch(/exhausted.*synthesize.*MODEL_TIMEOUT.*4.*NON_RETRYABLE_FAILURE/)
    expect(table.stdout).not.toContain(otherTenant)
    const csv = await cli(['dead-tasks', 'list', '--tenant', tenant, '--format', 'csv'])
    expect(csv.stdout.split('\n')[0]).toBe(
      'tenant_id,task_id,run_id,position,event_id,failed_step,error_code,message,attempts,retry_state,failures,dead_lettered_at,status,redriven_by,redriven_at,redrive_run_id,redrive_note',
    )
    const bad = await cli(['dead-tasks', 'list', '--tenant', 'Not-A-Tenant'])
    expect(bad.code).toBe(1)
    expect(bad.stderr.trim().split('\n')).toHaveLength(1)
    expect(bad.stderr).toContain('Not-A-Tenant')
  }, 60_000)

  it('redrives the task after the fix: a linked run recording who redrove it that calls only the synthesis model again', async () => {
    // The fix: the worker restarts without the fault.
    await suite.rig.worker.stop()
    suite.rig.addWorker('fixed-worker', { rules: [] }).start()
    const before = await eventsOf(exhausted)
    const failedRunId = ofType(before, 'AgentTaskReceived')[0]!.event.metadata.runId
    const tooLongEvents = (await eventsOf(tooLong)).length
    const callsBefore = readModelLedger(suite.rig.ledgerPath).filter((call) => call.tenantId === tenant && call.taskId === exhausted.taskId)

    // Two operators redrive it at once: one request is recorded in the task's stream first, and the other is refused.
    const redrives = await Promise.all(
      ['alice', 'mallory'].map(async (by) => ({ by, run: await cli(['redrive', '--tenant', tenant, '--task', exhausted.taskId, '--by', by, '--note', 'provider timeout raised', '--wait']) })),
    )
    const winners = redrives.filter(({ run }) => run.code === 0)
    expect(winners).toHaveLength(1)
    const { by: alice, run: redrive } = winners[0]!
    const loser = redrives.find(({ run }) => run.code !== 0)!
    expect(redrive.stderr).toBe('')
    expect(redrive.stdout).toContain('"status": "completed"')
    expect(loser.run.code).toBe(1)
    expect(loser.run.stderr.trim().split('\n')).toHaveLength(1)
    expect(loser.run.stderr).toMatch(new RegExp(`cannot redrive ${tenant}/exhausted: (a redrive of its dead letter \\(run ${failedRunId}\\) was requested by ${alice}|its dead letter \\(run ${failedRunId}\\) was already redriven by ${alice})`))

    const after = await eventsOf(exhausted)
    const added = after.slice(before.length)
    expect(added.map((stored) => stored.event.type)).toEqual(['RedriveRequested', 'TaskRunStarted', 'SynthesisModelInvoked', 'AgentTaskCompleted'])
    expect(added[0]!.event.data).toEqual({ deadLetteredRunId: failedRunId, requestedBy: alice, note: 'provider timeout raised', resumed: false })
    const started = added[1]!.event as TaskRunStarted
    expect(started.data).toMatchObject({ reason: 'redrive', parentRunId: failedRunId, fromStep: 'synthesize', requestedBy: alice, note: 'provider timeout raised' })
    expect(started.metadata.runId).not.toBe(failedRunId)
    for (const stored of added.slice(2)) expect(stored.event.metadata.runId).toBe(started.metadata.runId)

    // Only synthesis was called again: routing, planning and the tools reused the failed run's recorded outcomes.
    const calls = readModelLedger(suite.rig.ledgerPath).filter((call) => call.tenantId === tenant && call.taskId === exhausted.taskId)
    const newCalls = calls.slice(callsBefore.length)
    expect(newCalls.map((call) => call.role)).toEqual(['synthesis'])
    expect(calls.filter((call) => call.role === 'routing')).toHaveLength(1)
    expect(calls.filter((call) => call.role === 'planning')).toHaveLength(1)
    expect(ofType(after, 'ToolCallExecuted').length + ofType(after, 'ToolCallFailed').length).toBe(ofType(before, 'ToolCallExecuted').length + ofType(before, 'ToolCallFailed').length)

    // The read model shows who redrove it, and the new run.
    await catchUp()
    expect(await listed(['--tenant', tenant])).toEqual([])
    const redriven = await listed(['--tenant', tenant, '--status', 'redriven'])
    expect(redriven.map((letter) => [letter.taskId, letter.runId, letter.status, letter.redrivenBy, letter.redriveRunId, letter.redriveNote])).toEqual([
      ['exhausted', failedRunId, 'redriven', alice, started.metadata.runId, 'provider timeout raised'],
    ])
    expect(redriven[0]!.redrivenAt).toBe(new Date(started.metadata.occurredAt).toISOString())

    // The audit trail names the dead letter and the lineage of the redrive.
    const audit = await cli(['audit', tenant, exhausted.taskId, '--event-type', 'TaskDeadLettered,TaskRunStarted', '--format', 'json'])
    expect(audit.code).toBe(0)
    expect((JSON.parse(audit.stdout) as { summary: string }[]).map((entry) => entry.summary)).toEqual([
      'task dead-lettered: step synthesize exhausted 4 attempt(s) with MODEL_TIMEOUT; awaiting redrive',
      expect.stringMatching(new RegExp(`^redrive run started by ${alice} from step synthesize of run ${failedRunId}`)),
    ])

    // A second redrive is refused in one line, and starts nothing.
    const again = await cli(['redrive', '--tenant', tenant, '--task', exhausted.taskId, '--by', 'bob'])
    expect(again.code).toBe(1)
    expect(again.stderr.trim().split('\n')).toHaveLength(1)
    expect(again.stderr).toContain(`cannot redrive ${tenant}/exhausted: its dead letter (run ${failedRunId}) was already redriven by ${alice}`)
    const notDead = await cli(['redrive', '--tenant', tenant, '--task', tooLong.taskId])
    expect(notDead.code).toBe(1)
    expect(notDead.stderr).toContain('it is not dead-lettered: it failed at step synthesize with MODEL_CONTEXT_LENGTH_EXCEEDED')
    expect((await eventsOf(exhausted)).length).toBe(after.length)
    expect((await eventsOf(tooLong)).length).toBe(tooLongEvents)
    const described = await suite.rig.client.workflow.getHandle(pipelineWorkflowId(tenant, exhausted.taskId)).describe()
    expect(described.runId).toBe(started.metadata.runId)

    // The incremental read models equal a rebuild from position 0.
    expect(await rebuildAndCompare(suite.store, suite.rig.database.pool, defaultProjections())).toMatchObject({ matches: true, differences: [] })
  }, 120_000)
})

describe('dead letter of an activity Temporal gave up on (maximum attempts reached, pglite)', () => {
  it('records retry state MAXIMUM_ATTEMPTS_REACHED, the step maximum as attempts, and the unrecorded final attempt', async () => {
    const database = await freshPgliteDatabase()
    const store = new PostgresEventStore(database)
    const historian = new Historian(store, { keyRing: randomKeyRing() })
    const connection = await NativeConnection.connect({ address: inject('temporalAddress') })
    const clientConnection = await Connection.connect({ address: inject('temporalAddress') })
    try {
      const real = createActivities({
        historian,
        models: new ModelClient(modelsFromConfig({ provider: 'scripted', latencyMs: 0, timeoutMs: 1_000 })),
        tools: createDefaultTools({ pool: database.pool }),
        clock: () => new Date(),
      })
      // The tool runtime is unreachable: every attempt of every tool call throws a retryable error and records nothing.
      const attemptsByCall = new Map<string, number>()
      const activities = {
        ...real,
        executeToolCall: async (input: TaskRef & { toolCallId: string }): Promise<never> => {
          attemptsByCall.set(input.toolCallId, (attemptsByCall.get(input.toolCallId) ?? 0) + 1)
          throw new Error('tool runtime unreachable')
        },
      }
      const taskQueue = `dl-max-${uniqueSuffix()}`
      const worker = await createPipelineWorker({ connection, namespace: 'default', taskQueue, activities, workflowBundle: await sharedWorkflowBundle() })
      const task: TaskRef = { tenantId: `dlmax_${uniqueSuffix()}`, taskId: 'tools-down' }
      const client = new Client({ connection: clientConnection })
      const result = await worker.runUntil(async () =>
        (await startPipeline(client, { ...task, input: 'Calculate (1250 * 12) + 380 for the budget', requestedBy: 'test', tuning: { retryInitialIntervalMs: 50 } }, taskQueue)).result(),
      )
      expect(result).toMatchObject({ status: 'failed', failedStep: 'tools', errorCode: 'Error' })

      const events = (await historian.readTask(task.tenantId, task.taskId)).events
      const letters = events.filter((stored) => stored.event.type === 'TaskDeadLettered')
      expect(letters).toHaveLength(1)
      const failedCall = [...attemptsByCall].find(([, attempts]) => attempts === 5)
      expect(failedCall).toBeDefined()
      expect(letters[0]!.event.data).toEqual({
        failedStep: 'tools',
        errorCode: 'Error',
        message: 'tool runtime unreachable',
        attempts: 5,
        retryState: 'MAXIMUM_ATTEMPTS_REACHED',
        failures: [{ eventId: null, attempt: 5, errorCode: 'Error', message: 'tool runtime unreachable', occurredAt: null }],
        runId: events[0]!.event.metadata.runId,
      })
    } finally {
      await clientConnection.close()
      await connection.close()
      await store.close()
      await database.close()
    }
  }, 60_000)
})
