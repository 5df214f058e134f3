import { Client, Connection } from '@temporalio/client'
import { NativeConnection } from '@temporalio/worker'
import { ModelClient } from '../activities/models/modelClient'
import { ModelConfig, modelsFromConfig, type MaxOutputTokens } from '../activities/models/modelsFromConfig'
import { resolveOutputDialect } from '../activities/models/outputProbe'
import { createActivities } from '../activities/pipelineActivities'
import { createDefaultTools } from '../activities/tools/registry'
import { TASK_INPUTS } from '../dev/demo/demoScenario'
import { startPipeline } from '../cli/runtime/pipelineClient'
import { createPipelineWorker } from '../cli/runtime/pipelineWorker'
import type { Database } from '../historian/adapters/postgres/database'
import { PostgresEventStore } from '../historian/adapters/postgres/postgresEventStore'
import type { OutputDialect } from '../historian/events'
import { Historian } from '../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../historian/integrity/tenantKeyRing'

/** A real model answers one request at a time here: a call may wait behind a probe or another role's call. */
const MODEL_TIMEOUT_MS = 180_000

/** How one variant fared: tasks completed of those run, and the seconds each took. */
export interface CompletionFigures {
  readonly dialect: OutputDialect
  readonly completed: number
  readonly tasks: number
  readonly rate: number
  readonly failedErrorCodes: Record<string, number>
  readonly secondsPerTask: readonly number[]
}

/** What the JSON reports next to the rates: the model and how it was run. */
export interface RealModelSettings {
  readonly baseURL: string
  readonly modelId: string
  readonly modelFile: string | undefined
  readonly contextSize: number | undefined
  readonly sampling: string
  readonly maxOutputTokens: MaxOutputTokens
  readonly modelTimeoutMs: number
}

/**
 * Runs `tasks` pipelines one after the other (the server answers one request at a time) through a real Temporal worker
 * whose models are the real server's, in `dialect`, and counts how many complete. The tasks cycle through the demo's inputs.
 */
export async function measureRealModelCompletion(options: {
  temporalAddress: string
  database: Database
  baseURL: string
  modelId: string
  dialect: OutputDialect | 'auto'
  tasks: number
  onTask?: (index: number, status: string, seconds: number) => void
}): Promise<CompletionFigures> {
  const config = ModelConfig.parse({
    provider: 'openai-compatible',
    baseURL: options.baseURL,
    models: { routing: options.modelId, planning: options.modelId, synthesis: options.modelId },
    outputDialect: options.dialect,
    timeoutMs: MODEL_TIMEOUT_MS,
  })
  const dialect = options.dialect === 'auto' ? (await resolveOutputDialect(config)).dialect : options.dialect
  const store = new PostgresEventStore(options.database)
  const workerConnection = await NativeConnection.connect({ address: options.temporalAddress })
  const clientConnection = await Connection.connect({ address: options.temporalAddress })
  const client = new Client({ connection: clientConnection })
  const runTag = Date.now().toString(36)
  const taskQueue = `bench-real-model-${dialect}-${runTag}`
  const activities = createActivities({
    historian: new Historian(store, { keyRing: TenantKeyRing.fromText(generateIntegrityKey()) }),
    models: new ModelClient(modelsFromConfig(config, { dialect })),
    tools: createDefaultTools({ pool: options.database.pool }),
    clock: () => new Date(),
  })
  const failedErrorCodes: Record<string, number> = {}
  const secondsPerTask: number[] = []
  let completed = 0
  try {
    const worker = await createPipelineWorker({ connection: workerConnection, namespace: 'default', taskQueue, activities })
    await worker.runUntil(async () => {
      for (let index = 0; index < options.tasks; index++) {
        const started = performance.now()
        const handle = await startPipeline(
          client,
          { tenantId: 'bench_real', taskId: `${dialect}-${runTag}-${index}`, input: TASK_INPUTS[index % TASK_INPUTS.length]!, requestedBy: 'bench', tuning: { retryInitialIntervalMs: 200 } },
          taskQueue,
        )
        const result = await handle.result()
        const seconds = (performance.now() - started) / 1000
        secondsPerTask.push(Math.round(seconds * 10) / 10)
        if (result.status === 'completed') completed++
        else failedErrorCodes[result.errorCode ?? 'unknown'] = (failedErrorCodes[result.errorCode ?? 'unknown'] ?? 0) + 1
        options.onTask?.(index, result.status, seconds)
      }
    })
  } finally {
    await clientConnection.close()
    await workerConnection.close()
    await store.close()
  }
  return { dialect, completed, tasks: options.tasks, rate: completed / options.tasks, failedErrorCodes, secondsPerTask }
}
