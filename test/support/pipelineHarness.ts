import { randomBytes } from 'node:crypto'
import { Client, Connection } from '@temporalio/client'
import { NativeConnection, type WorkflowBundle } from '@temporalio/worker'
import { inject } from 'vitest'
import type { FaultPlan } from '../../dev/faults/faultPlan'
import { ModelClient } from '../../activities/models/modelClient'
import { modelsFromConfig } from '../../activities/models/modelsFromConfig'
import { createActivities } from '../../activities/pipelineActivities'
import { createDefaultTools } from '../../activities/tools/registry'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import type { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { createPipelineWorker } from '../../cli/runtime/pipelineWorker'
import { loadPrebuiltWorkflowBundle } from '../../cli/runtime/workflowBundle'
import type { AgentPipelineInput, AgentPipelineResult } from '../../workflows/api'
import { freshPgliteDatabase, freshPostgresDatabase, randomKeyRing } from './databases'
import { faultDecorators } from '../../dev/faults/faultDecorators'
import { wrapActivities, wrapTools, type PipelineWrappers } from './pipelineWrappers'

let bundle: WorkflowBundle | undefined

/** The prebuilt workflow bundle (`npm test` builds it first), read once per test file. */
export async function sharedWorkflowBundle(): Promise<WorkflowBundle> {
  bundle ??= loadPrebuiltWorkflowBundle()
  return bundle
}

/** A random suffix for tenant, task and task-queue names, so tests never share streams. */
export const uniqueSuffix = () => randomBytes(4).toString('hex')

export interface PipelineHarness {
  readonly database: Database
  readonly store: PostgresEventStore
  readonly historian: Historian
  /** The random integrity key ring the activities append with. */
  readonly keyRing: TenantKeyRing
  readonly client: Client
  readonly connection: NativeConnection
  readonly taskQueue: string
  /** Runs a fresh in-process worker until `work` settles (a Temporal worker runs only once). */
  withWorker<T>(work: () => Promise<T>): Promise<T>
  /** Runs pipelines with an in-process worker until they all end. */
  run(inputs: readonly AgentPipelineInput[]): Promise<AgentPipelineResult[]>
  close(): Promise<void>
}

/** How a harness's worker differs from the production worker: faults, the scripted model's latency, tools, test wrappers. */
export interface PipelineHarnessOptions {
  readonly faults?: FaultPlan
  readonly latencyMs?: number
  readonly ledgerPath?: string
  readonly workflowBundle?: WorkflowBundle
  readonly models?: ModelClient
  /** Test wrappers around the real activities and tools (test/support/pipelineWrappers.ts). */
  readonly wrappers?: PipelineWrappers
}

/** A real Temporal worker with the real activities over a fresh database (PostgreSQL server or PGlite) and the scripted model, or `models`. */
export async function pipelineHarness(
  kind: 'postgres' | 'pglite',
  options: PipelineHarnessOptions = {},
): Promise<PipelineHarness> {
  const database = kind === 'postgres' ? await freshPostgresDatabase() : await freshPgliteDatabase()
  const store = new PostgresEventStore(database)
  const keyRing = randomKeyRing()
  const historian = new Historian(store, { keyRing })
  const address = inject('temporalAddress')
  const connection = await NativeConnection.connect({ address })
  const clientConnection = await Connection.connect({ address })
  const client = new Client({ connection: clientConnection })
  const taskQueue = `test-${uniqueSuffix()}`
  // The fault plan goes in as the dev worker injects it (dev/faults/); its crash faults would end this test process.
  const faulty = faultDecorators(options.faults ?? { rules: [] }, () => {
    throw new Error('a crash_after_append fault needs a worker process of its own (test/support/supervisedWorker.ts)')
  })
  const tools = wrapTools(createDefaultTools({ pool: database.pool }), options.wrappers)
  const activities = wrapActivities(
    createActivities({
      historian: faulty.historian?.(historian) ?? historian,
      models:
        options.models ??
        new ModelClient(modelsFromConfig({ provider: 'scripted', latencyMs: options.latencyMs ?? 0, ledgerPath: options.ledgerPath, timeoutMs: 1_000 }, faulty.model ? { wrapModel: faulty.model } : {})),
      tools: faulty.tools?.(tools) ?? tools,
      clock: () => new Date(),
    }),
    options.wrappers,
  )
  const withWorker = async <T>(work: () => Promise<T>): Promise<T> => {
    const worker = await createPipelineWorker({ connection, namespace: 'default', taskQueue, activities, workflowBundle: options.workflowBundle ?? (await sharedWorkflowBundle()) })
    return worker.runUntil(work)
  }
  return {
    database,
    store,
    historian,
    keyRing,
    client,
    connection,
    taskQueue,
    withWorker,
    run: (inputs) =>
      withWorker(() =>
        Promise.all(inputs.map(async (input) => (await startPipeline(client, { tuning: { retryInitialIntervalMs: 50 }, ...input }, taskQueue)).result())),
      ),
    async close() {
      await clientConnection.close()
      await connection.close()
      await store.close()
      await database.close()
    },
  }
}
