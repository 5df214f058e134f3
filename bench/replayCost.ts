import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Client, Connection } from '@temporalio/client'
import { NativeConnection } from '@temporalio/worker'
import { MODEL_ROLES, ModelClient } from '../activities/models/modelClient'
import { modelsFromConfig } from '../activities/models/modelsFromConfig'
import { createActivities } from '../activities/pipelineActivities'
import { createDefaultTools } from '../activities/tools/registry'
import { startLinkedRun } from '../cli/runtime/linkedRuns'
import { readModelLedger } from '../cli/runtime/modelLedger'
import { startPipeline } from '../cli/runtime/pipelineClient'
import { createPipelineWorker } from '../cli/runtime/pipelineWorker'
import type { Database } from '../historian/adapters/postgres/database'
import { PostgresEventStore } from '../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../historian/integrity/tenantKeyRing'
import type { agentPipeline } from '../workflows'

/** What `measureReplayCost` found. */
export interface ReplayCostFigures {
  /** Model calls of the replays (each from its task's last model step) / model calls of the original runs. Goal 1 / model steps. */
  readonly replayCostRatio: number
  /** 1 over the number of model steps of a pipeline: what replaying only the last one should cost. */
  readonly replayCostGoal: number
  readonly pipelines: number
  readonly originalModelCalls: number
  readonly replayModelCalls: number
  readonly replayFromStep: 'synthesize'
  readonly store: string
}

const TASK_INPUTS = [
  'Calculate (1250 * 12) + 380 for the annual budget line',
  'Notify the on-call team on slack that the nightly export finished',
  'Search the knowledge base for the data retention policy',
]

/**
 * Runs `pipelines` real pipelines through a Temporal worker on the real store, then replays each from its last model
 * step (synthesize) as a linked run, and divides the model calls the scripted model's ledger shows for the replays by
 * those of the originals.
 */
export async function measureReplayCost(options: { temporalAddress: string; database: Database; pipelines: number }): Promise<ReplayCostFigures> {
  const dir = mkdtempSync(path.join(tmpdir(), 'annalist-bench-replay-'))
  const ledgerPath = path.join(dir, 'model-calls.jsonl')
  const keyRing = TenantKeyRing.fromText(generateIntegrityKey())
  const store = new PostgresEventStore(options.database)
  const historian = new Historian(store, { keyRing })
  const workerConnection = await NativeConnection.connect({ address: options.temporalAddress })
  const clientConnection = await Connection.connect({ address: options.temporalAddress })
  const client = new Client({ connection: clientConnection })
  const taskQueue = `bench-replay-${Date.now().toString(36)}`
  const tenantId = `bench_replay_${Date.now().toString(36)}`
  const worker = await createPipelineWorker({
    connection: workerConnection,
    namespace: 'default',
    taskQueue,
    activities: createActivities({
      historian,
      models: new ModelClient(modelsFromConfig({ provider: 'scripted', latencyMs: 0, ledgerPath })),
      tools: createDefaultTools({ pool: options.database.pool }),
      clock: () => new Date(),
    }),
  })
  try {
    const taskIds = Array.from({ length: options.pipelines }, (_, i) => `replay-${i}`)
    const { originals, replays } = await worker.runUntil(async () => {
      const started = await Promise.all(
        taskIds.map((taskId, i) => startPipeline(client, { tenantId, taskId, input: TASK_INPUTS[i % TASK_INPUTS.length]!, requestedBy: 'bench' }, taskQueue)),
      )
      const results = await Promise.all(started.map((handle) => handle.result()))
      if (results.some((result) => result.status !== 'completed')) throw new Error('bench replayCost: an original pipeline failed')
      const linked = await Promise.all(taskIds.map((taskId) => startLinkedRun({ client, historian, keyRing, taskQueue }, { tenantId, taskId, fromStep: 'synthesize', reason: 'replay', requestedBy: 'bench' })))
      const replayed = await Promise.all(linked.map((run) => client.workflow.getHandle<typeof agentPipeline>(run.workflowId, run.runId).result()))
      if (replayed.some((result) => result.status !== 'completed')) throw new Error('bench replayCost: a replay failed')
      return { originals: new Set(started.map((handle) => handle.firstExecutionRunId)), replays: new Set(linked.map((run) => run.runId)) }
    })
    const ledger = readModelLedger(ledgerPath).filter((call) => call.tenantId === tenantId)
    const originalModelCalls = ledger.filter((call) => call.runId !== undefined && originals.has(call.runId)).length
    const replayModelCalls = ledger.filter((call) => call.runId !== undefined && replays.has(call.runId)).length
    return {
      replayCostRatio: replayModelCalls / originalModelCalls,
      replayCostGoal: 1 / MODEL_ROLES.length,
      pipelines: options.pipelines,
      originalModelCalls,
      replayModelCalls,
      replayFromStep: 'synthesize',
      store: options.database.kind,
    }
  } finally {
    await clientConnection.close()
    await workerConnection.close()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
