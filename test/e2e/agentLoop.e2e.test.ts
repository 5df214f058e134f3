import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { TestWorkflowEnvironment } from '@temporalio/testing'
import { ModelClient } from '../../activities/models/modelClient'
import { modelsFromConfig } from '../../activities/models/modelsFromConfig'
import { createActivities } from '../../activities/pipelineActivities'
import { createDefaultTools } from '../../activities/tools/registry'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import { startPipeline, TaskIdSearchAttribute, TenantIdSearchAttribute } from '../../cli/runtime/pipelineClient'
import { createPipelineWorker } from '../../cli/runtime/pipelineWorker'
import { reconcileTasks } from '../../cli/runtime/reconcileTasks'
import { findTemporalBinary } from '../../cli/runtime/temporalBinary'
import { verifyRun } from '../../cli/runtime/verifyRun'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian, type StoredEvent } from '../../historian/historian'
import { verifyChain } from '../../historian/integrity/verifyChain'
import { foldTask } from '../../historian/taskState'
import { defaultProjections } from '../../projections/defaultProjections'
import { rebuildAndCompare } from '../../projections/rebuild'
import { ProjectionRunner } from '../../projections/runner'
import { pipelineWorkflowId, type AgentPipelineResult, type TaskRef } from '../../workflows/api'
import { freshPostgresDatabase, randomKeyRing } from '../support/databases'
import { pipelineHarness, sharedWorkflowBundle, uniqueSuffix, type PipelineHarness } from '../support/pipelineHarness'
import { runAnnalist } from '../support/runCli'
import { operatorKeyEnv } from '../support/operatorKey'

/** The task names its count, so the scripted planner says done on its own (iteration 28 of at most 40): 27 x 8 + 4 calls. */
const INPUT = 'Run 220 checks over the quarterly ledger'
const TOOL_CALLS = 220
const ITERATIONS = 28
/** A run continues as new once its history passes this many events (Temporal itself suggests it only at thousands). */
const HISTORY_THRESHOLD = 250

describe.each(['postgres', 'pglite'] as const)('a long agent loop across continue-as-new (%s)', (kind) => {
  const tenantId = `loop_${uniqueSuffix()}`
  const task: TaskRef = { tenantId, taskId: 'ledger-checks' }
  let harness: PipelineHarness
  let workDir: string
  let ledgerPath: string
  let result: AgentPipelineResult
  let events: StoredEvent[]
  let runIds: string[]
  let projector: ProjectionRunner

  beforeAll(async () => {
    workDir = mkdtempSync(path.join(tmpdir(), 'annalist-loop-'))
    ledgerPath = path.join(workDir, 'calls.jsonl')
    harness = await pipelineHarness(kind, { ledgerPath })
    // The read models are built while the loop runs, and compared with a rebuild at the end.
    projector = new ProjectionRunner({ store: harness.store, pool: harness.database.pool, projections: defaultProjections(), pollIntervalMs: 200 })
    void projector.start()
    result = await harness.withWorker(async () => {
      const handle = await startPipeline(
        harness.client,
        { ...task, input: INPUT, requestedBy: 'loop-test', loop: { maxIterations: 40, toolCallsPerIteration: 8 }, tuning: { retryInitialIntervalMs: 50, continueAsNewAtHistoryLength: HISTORY_THRESHOLD } },
        harness.taskQueue,
      )
      return handle.result()
    })
    events = [...(await harness.historian.readTask(tenantId, task.taskId)).events]
    runIds = [...new Set(events.map((stored) => stored.event.metadata.runId))]
  }, 240_000)
  afterAll(async () => {
    await projector?.stop()
    await harness?.close()
    rmSync(workDir, { recursive: true, force: true })
  })

  it('completes with every planned tool call recorded exactly once, over several Temporal runs of one pipeline run', async () => {
    expect(result).toMatchObject({ ...task, status: 'completed', route: 'general', toolCalls: TOOL_CALLS, toolCallsFailed: 0 })

    // Temporal: one chain of runs, every one but the last continued as new.
    const runs = []
    for await (const info of harness.client.workflow.list({ query: `WorkflowId = '${pipelineWorkflowId(tenantId, task.taskId)}'` })) runs.push(info)
    runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime())
    expect(runs.length).toBeGreaterThanOrEqual(3)
    expect(runs.map((run) => run.status.name)).toEqual([...runs.slice(1).map(() => 'CONTINUED_AS_NEW'), 'COMPLETED'])
    expect(runIds).toEqual(runs.map((run) => run.runId))

    const ofType = (type: string) => events.filter((stored) => stored.event.type === type)
    expect(ofType('AgentTaskReceived')).toHaveLength(1)
    expect(ofType('RoutingModelInvoked')).toHaveLength(1)
    const plans = ofType('PlanIterationCreated').map((stored) => stored.event)
    expect(plans.map((event) => (event.type === 'PlanIterationCreated' ? event.data.iteration : 0))).toEqual(Array.from({ length: ITERATIONS }, (_, i) => i + 1))
    expect(plans.map((event) => (event.type === 'PlanIterationCreated' ? event.data.done : undefined))).toEqual([...Array.from({ length: ITERATIONS - 1 }, () => false), true])
    const planned = plans.flatMap((event) => (event.type === 'PlanIterationCreated' ? event.data.toolCalls.map((call) => call.toolCallId) : []))
    expect(planned).toHaveLength(TOOL_CALLS)
    expect(new Set(planned).size).toBe(TOOL_CALLS)
    const executed = ofType('ToolCallExecuted').map((stored) => (stored.event.type === 'ToolCallExecuted' ? stored.event.data.toolCallId : ''))
    expect(executed.sort()).toEqual([...planned].sort())
    expect(ofType('ToolCallFailed')).toHaveLength(0)
    expect(new Set(events.map((stored) => stored.eventId)).size).toBe(events.length)
    expect(ofType('SynthesisModelInvoked')).toHaveLength(1)
    expect(ofType('AgentTaskCompleted')).toHaveLength(1)

    // The answer stays bounded: counts and a sample, not 220 sentences.
    const completed = ofType('AgentTaskCompleted')[0]!.event
    if (completed.type !== 'AgentTaskCompleted') throw new Error('unreachable')
    expect(completed.data).toMatchObject({ toolCallsSucceeded: TOOL_CALLS, toolCallsFailed: 0 })
    expect(completed.data.answer).toContain(`${TOOL_CALLS} tool calls over ${ITERATIONS} iterations`)
    expect(completed.data.answer.length).toBeLessThan(2_000)

    // Each model step was called once: no iteration was planned twice, across runs.
    const ledger = readModelLedger(ledgerPath).filter((call) => call.taskId === task.taskId)
    expect(ledger.filter((call) => call.role === 'planning').map((call) => call.activityId)).toEqual(Array.from({ length: ITERATIONS }, (_, i) => `plan:${i + 1}`))
    expect(ledger).toHaveLength(ITERATIONS + 2)
  })

  it('records each hand-over as TaskRunContinued, and the stream stays one chain naming each Temporal run', async () => {
    const continued = events.filter((stored) => stored.event.type === 'TaskRunContinued')
    expect(continued).toHaveLength(runIds.length - 1)
    for (const [index, stored] of continued.entries()) {
      const event = stored.event
      if (event.type !== 'TaskRunContinued') throw new Error('unreachable')
      expect(event.metadata.runId).toBe(runIds[index])
      expect(event.metadata.activityId).toBe(`continue:${event.data.iterationsDone}`)
      expect(event.data).toMatchObject({ reason: 'history_threshold', toolCallsDone: event.data.iterationsDone * 8 })
      expect(event.data.historyLength).toBeGreaterThanOrEqual(HISTORY_THRESHOLD)
      expect(event.data.historySizeBytes).toBeGreaterThan(0)
      // The next run's first event is the next iteration's plan, caused by the hand-over, under the new run ID.
      const next = events[events.indexOf(stored) + 1]!.event
      expect(next).toMatchObject({ type: 'PlanIterationCreated', data: { iteration: event.data.iterationsDone + 1 }, metadata: { runId: runIds[index + 1], causationId: stored.eventId } })
    }
    // Every event of a run sits between its hand-overs: the runs do not interleave.
    const runOrder = events.map((stored) => runIds.indexOf(stored.event.metadata.runId))
    expect(runOrder).toEqual([...runOrder].sort((a, b) => a - b))

    // The fold: one pipeline run, begun by the first Temporal run.
    const state = foldTask(events.map((stored) => stored.event))
    expect(state).toMatchObject({ status: 'completed', runId: runIds[0], runs: 1, iterations: ITERATIONS, loopDone: true })
    expect(state.toolCalls).toHaveLength(TOOL_CALLS)

    const chain = await verifyChain({ store: harness.store, keyRing: harness.keyRing, tenantId, taskId: task.taskId })
    expect(chain).toMatchObject({ intact: true, firstBreak: null, eventsChecked: events.length })
    const verification = await verifyRun({ historian: harness.historian, pool: harness.database.pool, tasks: [task], ledger: readModelLedger(ledgerPath), keyRing: harness.keyRing })
    expect(verification).toMatchObject({ duplicateOutcomes: 0, modelCallsRepeatedAfterCrash: 0, duplicateSideEffects: 0, tasksWithoutTerminalEvent: 0, chainsIntact: true })
  })

  it('reconciles clean across every run of the chain, and the read models equal a rebuild', async () => {
    const report = await reconcileTasks({ client: harness.client, store: harness.store }, [task])
    expect(report).toMatchObject({ tasksChecked: 1, workflowRunsChecked: runIds.length, eventsChecked: events.length, findings: [] })
    // Every event is one activity's outcome: the activities of all runs together.
    expect(report.activitiesChecked).toBe(events.length)

    await projector.waitForPosition(events[events.length - 1]!.position, 60_000)
    await projector.stop()
    const comparison = await rebuildAndCompare(harness.store, harness.database.pool, defaultProjections())
    expect(comparison).toMatchObject({ matches: true, differences: [] })
    const summary = await harness.database.pool.query('select status, tool_calls_succeeded from task_summary where tenant_id = $1 and task_id = $2', [tenantId, task.taskId])
    expect(summary.rows).toEqual([{ status: 'completed', tool_calls_succeeded: TOOL_CALLS }])
  })
})

describe('annalist start --loop-iterations', () => {
  const tenantId = `loopcli_${uniqueSuffix()}`
  let harness: PipelineHarness
  beforeAll(async () => {
    harness = await pipelineHarness('postgres')
  })
  afterAll(async () => {
    await harness?.close()
  })

  it('starts an agent loop and prints its result; refuses bad loop options in one line, starting nothing', async () => {
    // `start` checks the caller's key (task.start) in the harness's PostgreSQL server database.
    const databaseUrl = (harness.database as typeof harness.database & { url: string }).url
    const env = { TEMPORAL_ADDRESS: inject('temporalAddress'), ANNALIST_TASK_QUEUE: harness.taskQueue, DATABASE_URL: databaseUrl, ...(await operatorKeyEnv(harness.database.pool)) }
    const started = await harness.withWorker(() =>
      runAnnalist(['start', '--tenant', tenantId, '--task', 'cli-loop', '--input', 'Run 5 checks please', '--loop-iterations', '4', '--calls-per-iteration', '2', '--wait'], env),
    )
    expect(started.stderr).toBe('')
    expect(started.code).toBe(0)
    expect(started.stdout).toMatch(new RegExp(`^pipeline ${pipelineWorkflowId(tenantId, 'cli-loop')} run \\S+ \\(agent loop of at most 4 iterations\\)$`, 'm'))
    expect(JSON.parse(started.stdout.slice(started.stdout.indexOf('{')))).toMatchObject({ status: 'completed', toolCalls: 5, toolCallsFailed: 0 })
    const plans = (await harness.historian.readTask(tenantId, 'cli-loop')).events.filter((stored) => stored.event.type === 'PlanIterationCreated')
    expect(plans.map((stored) => (stored.event.type === 'PlanIterationCreated' ? [stored.event.data.toolCalls.length, stored.event.data.done] : []))).toEqual([
      [2, false],
      [2, false],
      [1, true],
    ])

    for (const [flags, message] of [
      [['--loop-iterations', '0'], '--loop-iterations must be a whole number from 1 to 10000, got "0"'],
      [['--loop-iterations', '3', '--calls-per-iteration', '99'], '--calls-per-iteration must be a whole number from 1 to 64, got "99"'],
      [['--calls-per-iteration', '2'], '--calls-per-iteration needs --loop-iterations'],
    ] as const) {
      const refused = await runAnnalist(['start', '--tenant', tenantId, '--task', 'refused', '--input', 'x', ...flags], env)
      expect(refused.code).toBe(1)
      expect(refused.stderr.trim()).toBe(`annalist: ${message}  (run with --verbose for details)`)
    }
    const refusedRuns = []
    for await (const info of harness.client.workflow.list({ query: `WorkflowId = '${pipelineWorkflowId(tenantId, 'refused')}'` })) refusedRuns.push(info)
    expect(refusedRuns).toEqual([])
  }, 120_000)
})

describe('a long agent loop on a server that suggests continue-as-new early (postgres)', () => {
  /** The dev server suggests continue-as-new past this many history events (Temporal's default is 4,096, or 4 MB). */
  const SUGGEST_AT = 150
  const tenantId = `loopsug_${uniqueSuffix()}`
  const task: TaskRef = { tenantId, taskId: 'suggested' }
  const taskQueue = `loop-suggested-${uniqueSuffix()}`
  let env: TestWorkflowEnvironment
  let database: Database & { url: string }
  let store: PostgresEventStore
  let historian: Historian

  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: findTemporalBinary()! },
        extraArgs: ['--dynamic-config-value', `limit.historyCount.suggestContinueAsNew=${SUGGEST_AT}`],
        searchAttributes: [TenantIdSearchAttribute, TaskIdSearchAttribute],
      },
    })
    database = await freshPostgresDatabase()
    store = new PostgresEventStore(database)
    historian = new Historian(store, { keyRing: randomKeyRing() })
  })
  afterAll(async () => {
    await store?.close()
    await database?.close()
    await env?.teardown()
  })

  it('hands over whenever Temporal suggests it, with no threshold of its own, and reconciles clean', async () => {
    const activities = createActivities({
      historian,
      models: new ModelClient(modelsFromConfig({ provider: 'scripted', latencyMs: 0 })),
      tools: createDefaultTools({ pool: database.pool }),
      clock: () => new Date(),
    })
    const worker = await createPipelineWorker({ connection: env.nativeConnection, namespace: 'default', taskQueue, activities, workflowBundle: await sharedWorkflowBundle() })
    const input = { ...task, input: 'Run 64 checks over the ledger', requestedBy: 'loop-test', loop: { maxIterations: 20 }, tuning: { retryInitialIntervalMs: 50 } }
    const result = await worker.runUntil(async () => (await startPipeline(env.client, input, taskQueue)).result())
    expect(result).toMatchObject({ status: 'completed', toolCalls: 64, toolCallsFailed: 0 })

    const events = (await historian.readTask(tenantId, task.taskId)).events
    const continued = events.flatMap((stored) => (stored.event.type === 'TaskRunContinued' ? [stored.event.data] : []))
    expect(continued.length).toBeGreaterThanOrEqual(1)
    for (const data of continued) {
      expect(data.reason).toBe('continue_as_new_suggested')
      expect(data.historyLength).toBeGreaterThanOrEqual(SUGGEST_AT)
    }
    expect(new Set(events.map((stored) => stored.event.metadata.runId)).size).toBe(continued.length + 1)
    const report = await reconcileTasks({ client: env.client, store }, [task])
    expect(report).toMatchObject({ workflowRunsChecked: continued.length + 1, findings: [] })
  }, 120_000)
})
