import { Client, Connection, type WorkflowExecutionInfo } from '@temporalio/client'
import { NativeConnection } from '@temporalio/worker'
import type { FaultRule } from '../dev/faults/faultPlan'
import { ModelClient } from '../activities/models/modelClient'
import { modelsFromConfig } from '../activities/models/modelsFromConfig'
import { createActivities } from '../activities/pipelineActivities'
import { withModelFaults } from '../dev/faults/faultyModel'
import { createDefaultTools } from '../activities/tools/registry'
import { startPipeline, TenantIdSearchAttribute } from '../cli/runtime/pipelineClient'
import { createPipelineWorker } from '../cli/runtime/pipelineWorker'
import type { Database } from '../historian/adapters/postgres/database'
import { PostgresEventStore } from '../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../historian/integrity/tenantKeyRing'
import { analyticsProjection } from '../projections/analytics/projection'
import { tenantsWithFailures } from '../projections/analytics/query'
import { ProjectionRunner } from '../projections/runner'
import type { AgentPipelineResult } from '../workflows/api'
import { interleaveRounds, median, timeMs } from './interleavedRounds'

export interface AuditQuerySpeedupOptions {
  readonly temporalAddress: string
  readonly database: Database
  /** Pipelines run through Temporal before anything is timed (the issue asks for 1,000 or more). */
  readonly pipelines: number
  readonly tenants: number
  /** Interleaved rounds of each variant. */
  readonly rounds: number
  /** Read-model queries timed per round (one is well under a millisecond; their mean is the round's figure). */
  readonly readModelQueriesPerRound?: number
  /** Pipelines in flight at once. Default 100. */
  readonly inFlight?: number
  /** Histories the Temporal scan fetches at once, as a reasonable Temporal-only script would. Default 8. */
  readonly scanConcurrency?: number
  readonly onProgress?: (line: string) => void
  readonly onRound?: (variant: string, round: number, ms: number) => void
}

export interface AuditQuerySpeedupResult {
  /** Temporal scan median ms / read-model query median ms. */
  readonly auditQuerySpeedupVsTemporalScan: number
  readonly readModelMedianMs: number
  readonly temporalScanMedianMs: number
  readonly roundsReadModelMs: readonly number[]
  readonly roundsTemporalScanMs: readonly number[]
  readonly pipelines: number
  readonly tenants: number
  readonly tasksFailedAtSynthesis: number
  /** The answer both sides agreed on. */
  readonly tenantsWithSynthesisFailures: readonly string[]
  readonly workflowsScanned: number
  readonly historyEventsScanned: number
  readonly projectedToPosition: number
  readonly store: Database['kind']
}

/** The workflow's activity ID for the synthesis step. */
const SYNTHESIS_ACTIVITY_ID = 'synthesize'
const DAY_MS = 86_400_000
const TASK_INPUTS = [
  'Calculate (1250 * 12) + 380 for the annual budget line',
  'Search the knowledge base for the data retention policy',
  'Look up account ACC-1042 and summarize its balance',
]

/** Which tasks fail at synthesis: three in every sixty (5%), which fall to three of the tenants. */
function failsAtSynthesis(index: number): boolean {
  return [1, 22, 43].includes(index % 60)
}

function tenantOf(index: number, tenants: number, tag: string): string {
  return `aq${tag}_t${index % tenants}`
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function forEachBounded<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const index = next++
      await work(items[index]!, index)
    }
  })
  await Promise.all(lanes)
}

/** What the Temporal-only scan found. */
interface TemporalScan {
  readonly tenants: readonly string[]
  readonly workflows: number
  readonly events: number
}

/**
 * The Temporal-only answer to "which tenants had synthesis failures in the last 24 hours": list the pipeline
 * workflows started since then, fetch every history, and look for a failed `synthesize` activity (a final
 * ActivityTaskFailed or timeout, or a start on attempt > 1, which means an earlier attempt failed) or a workflow
 * that failed while synthesizing. The tenant comes from the TenantId search attribute.
 */
async function scanTemporal(client: Client, query: string, concurrency: number): Promise<TemporalScan> {
  const executions: WorkflowExecutionInfo[] = []
  for await (const execution of client.workflow.list({ query })) executions.push(execution)
  const tenants = new Set<string>()
  let events = 0
  await forEachBounded(executions, concurrency, async (execution) => {
    const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory()
    const synthesis = new Set<string>()
    let synthesisCompleted = false
    let failed = false
    for (const event of history.events ?? []) {
      events++
      const scheduled = event.activityTaskScheduledEventAttributes
      if (scheduled?.activityId === SYNTHESIS_ACTIVITY_ID) synthesis.add(String(event.eventId))
      const isSynthesis = (attributes: { scheduledEventId?: unknown } | null | undefined) => attributes != null && synthesis.has(String(attributes.scheduledEventId))
      if (isSynthesis(event.activityTaskFailedEventAttributes) || isSynthesis(event.activityTaskTimedOutEventAttributes)) failed = true
      if (isSynthesis(event.activityTaskStartedEventAttributes) && (event.activityTaskStartedEventAttributes?.attempt ?? 1) > 1) failed = true
      if (isSynthesis(event.activityTaskCompletedEventAttributes)) synthesisCompleted = true
      if (event.workflowExecutionFailedEventAttributes && synthesis.size > 0 && !synthesisCompleted) failed = true
    }
    if (!failed) return
    const tenant = execution.typedSearchAttributes.get(TenantIdSearchAttribute)
    if (tenant === undefined) throw new Error(`workflow ${execution.workflowId} has no ${TenantIdSearchAttribute.name} search attribute`)
    tenants.add(tenant)
  })
  return { tenants: [...tenants].sort(), workflows: executions.length, events }
}

function sameTenants(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((tenant, index) => tenant === b[index])
}

/**
 * Runs `pipelines` real pipelines through a Temporal worker (scripted models, no think time), a known 5% of them failing
 * at synthesis with a non-retryable context-length error, while the analytics projection follows the log. Then times,
 * in interleaved rounds, "which tenants had synthesis failures in the last 24 hours" from the read model against the
 * Temporal-only way (list workflows, fetch and scan every history); both answers must equal the planted tenants.
 */
export async function measureAuditQuerySpeedup(options: AuditQuerySpeedupOptions): Promise<AuditQuerySpeedupResult> {
  const progress = options.onProgress ?? (() => undefined)
  const tag = Date.now().toString(36)
  const taskQueue = `bench-audit-query-${tag}`
  const indexes = Array.from({ length: options.pipelines }, (_, index) => index)
  const failing = indexes.filter(failsAtSynthesis)
  const faults: FaultRule[] = failing.map((index) => ({
    target: 'synthesis',
    kind: 'context_length',
    tenantId: tenantOf(index, options.tenants, tag),
    taskId: `task-${index}`,
    attempts: [1, 2, 3, 4],
  }))
  const expectedTenants = [...new Set(failing.map((index) => tenantOf(index, options.tenants, tag)))].sort()

  const store = new PostgresEventStore(options.database)
  const pool = options.database.pool
  const workerConnection = await NativeConnection.connect({ address: options.temporalAddress })
  const clientConnection = await Connection.connect({ address: options.temporalAddress })
  const client = new Client({ connection: clientConnection })
  const activities = createActivities({
    historian: new Historian(store, { keyRing: TenantKeyRing.fromText(generateIntegrityKey()) }),
    models: new ModelClient(modelsFromConfig({ provider: 'scripted', latencyMs: 0 }, { wrapModel: withModelFaults({ rules: faults }) })),
    tools: createDefaultTools({ pool }),
    clock: () => new Date(),
  })
  const worker = await createPipelineWorker({ connection: workerConnection, namespace: 'default', taskQueue, activities })
  const running = worker.run()
  const projector = new ProjectionRunner({ store, pool, projections: [analyticsProjection()], batchSize: 500 })
  const projecting = projector.start()
  try {
    // 1. The pipelines, with live counts.
    const started = performance.now()
    const results: AgentPipelineResult[] = []
    let launched = 0
    const counts = () => {
      const failedCount = results.filter((result) => result.status === 'failed').length
      const seconds = (performance.now() - started) / 1_000
      return `${launched}/${options.pipelines} started, ${results.length} finished (${results.length - failedCount} completed, ${failedCount} failed), ${(results.length / seconds).toFixed(1)}/s`
    }
    const ticker = setInterval(() => progress(`pipelines: ${counts()}`), 2_000)
    try {
      await forEachBounded(indexes, options.inFlight ?? 100, async (index) => {
        const tenantId = tenantOf(index, options.tenants, tag)
        const handle = await startPipeline(client, { tenantId, taskId: `task-${index}`, input: TASK_INPUTS[index % TASK_INPUTS.length]!, requestedBy: 'bench' }, taskQueue)
        launched++
        results.push(await handle.result())
      })
    } finally {
      clearInterval(ticker)
    }
    progress(`pipelines: ${counts()}`)
    const failedAtSynthesis = results.filter((result) => result.status === 'failed' && result.failedStep === 'synthesize')
    const unexpected = results.filter((result) => result.status === 'failed' && result.failedStep !== 'synthesize')
    if (failedAtSynthesis.length !== failing.length || unexpected.length > 0) {
      throw new Error(`bench: expected exactly ${failing.length} pipelines to fail at synthesis, got ${failedAtSynthesis.length} (and ${unexpected.length} failing elsewhere)`)
    }

    // 2. The projector catches up with everything appended.
    await projector.stop()
    const projectedToPosition = await projector.catchUp()
    progress(`analytics projection caught up at position ${projectedToPosition}`)

    // 3. Both answers must be the planted tenants before anything is timed; Temporal's visibility may lag a moment.
    const since = new Date(Date.now() - DAY_MS)
    // The task-queue clause scopes the scan to this run's pipelines, as the scratch read model is; on the dev server the bench starts it excludes nothing.
    const query = `WorkflowType='agentPipeline' AND StartTime > '${since.toISOString()}' AND TaskQueue='${taskQueue}'`
    const ours = async () => (await tenantsWithFailures(pool, { step: 'synthesize', from: since })).map((row) => row.tenantId)
    const check = (variant: string, tenants: readonly string[]) => {
      if (!sameTenants(tenants, expectedTenants)) {
        throw new Error(`bench: ${variant} answered [${tenants.join(', ')}], expected [${expectedTenants.join(', ')}]`)
      }
    }
    check('the read model', await ours())
    let scan = await scanTemporal(client, query, options.scanConcurrency ?? 8)
    for (const deadline = Date.now() + 60_000; scan.workflows < options.pipelines && Date.now() < deadline; ) scan = await scanTemporal(client, query, options.scanConcurrency ?? 8)
    if (scan.workflows !== options.pipelines) throw new Error(`bench: Temporal lists ${scan.workflows} pipelines, expected ${options.pipelines}`)
    check('the Temporal scan', scan.tenants)

    // 4. Timed, side by side, in interleaved rounds; every answer is checked again.
    const perRound = options.readModelQueriesPerRound ?? 50
    const timings = await interleaveRounds(['readModel', 'temporalScan'] as const, options.rounds, async (variant, round) => {
      let ms: number
      if (variant === 'readModel') {
        let answer: string[] = []
        ms = (await timeMs(async () => {
          for (let i = 0; i < perRound; i++) answer = await ours()
        })) / perRound
        check('the read model', answer)
      } else {
        let answer: TemporalScan = scan
        ms = await timeMs(async () => {
          answer = await scanTemporal(client, query, options.scanConcurrency ?? 8)
        })
        check('the Temporal scan', answer.tenants)
      }
      options.onRound?.(variant, round, ms)
      return ms
    })
    const readModelMedianMs = median(timings.readModel)
    const temporalScanMedianMs = median(timings.temporalScan)
    return {
      auditQuerySpeedupVsTemporalScan: temporalScanMedianMs / readModelMedianMs,
      readModelMedianMs,
      temporalScanMedianMs,
      roundsReadModelMs: timings.readModel,
      roundsTemporalScanMs: timings.temporalScan,
      pipelines: options.pipelines,
      tenants: options.tenants,
      tasksFailedAtSynthesis: failedAtSynthesis.length,
      tenantsWithSynthesisFailures: expectedTenants,
      workflowsScanned: scan.workflows,
      historyEventsScanned: scan.events,
      projectedToPosition: Number(projectedToPosition),
      store: options.database.kind,
    }
  } finally {
    await projector.stop()
    await projecting.catch(() => undefined)
    worker.shutdown()
    await running.catch(() => undefined)
    await store.close()
    await clientConnection.close()
    await workerConnection.close()
  }
}
