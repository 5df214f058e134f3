import { Client, Connection } from '@temporalio/client'
import { NativeConnection, type Worker } from '@temporalio/worker'
import { ModelClient } from '../activities/models/modelClient'
import { modelsFromConfig } from '../activities/models/modelsFromConfig'
import { createActivities } from '../activities/pipelineActivities'
import { createDefaultTools } from '../activities/tools/registry'
import { startPipeline } from '../cli/runtime/pipelineClient'
import { createPipelineWorker } from '../cli/runtime/pipelineWorker'
import type { Database } from '../historian/adapters/postgres/database'
import { Historian } from '../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../historian/integrity/tenantKeyRing'
import type { EventStore } from '../historian/port'
import { median } from './interleavedRounds'

/** One variant of the pipeline under load: a worker on its own task queue over one event store. */
interface Variant {
  readonly name: string
  readonly taskQueue: string
  readonly worker: Worker
  readonly running: Promise<void>
}

export interface ThroughputResult {
  readonly historianOverheadRatio: number
  readonly pipelinesPerSecWith: number
  readonly pipelinesPerSecWithout: number
  /** Pipelines per second of each round, in run order. */
  readonly roundsWith: readonly number[]
  readonly roundsWithout: readonly number[]
  readonly roundsPerVariant: number
  readonly pipelinesPerRound: number
}

const TASK_INPUTS = [
  'Calculate (1250 * 12) + 380 for the annual budget line',
  'Notify the on-call team on slack that the nightly export finished',
  'Search the knowledge base for the data retention policy',
]

/**
 * Measures pipelines per second with the durable historian and with an in-memory one behind the same port, in
 * interleaved rounds in one run (with, without, without, with, ...), so machine noise hits both alike; each variant's
 * figure is the median of its rounds.
 */
export async function measurePipelineThroughput(options: {
  temporalAddress: string
  database: Database
  durable: EventStore
  baseline: EventStore
  pipelinesPerRound: number
  rounds: number
  /** Simulated think time of every scripted model call; 0 makes every millisecond of historian work visible. */
  modelLatencyMs: number
  onRound?: (variant: string, round: number, perSec: number) => void
}): Promise<ThroughputResult> {
  const workerConnection = await NativeConnection.connect({ address: options.temporalAddress })
  const clientConnection = await Connection.connect({ address: options.temporalAddress })
  const client = new Client({ connection: clientConnection })
  const runTag = Date.now().toString(36)
  // Both variants chain their events under a throwaway key, so the ratio includes the cost of the hashing.
  const keyRing = TenantKeyRing.fromText(generateIntegrityKey())
  const variant = async (name: string, store: EventStore): Promise<Variant> => {
    const taskQueue = `bench-${name}-${options.modelLatencyMs}ms-${runTag}`
    const activities = createActivities({
      historian: new Historian(store, { keyRing }),
      models: new ModelClient(modelsFromConfig({ provider: 'scripted', latencyMs: options.modelLatencyMs })),
      tools: createDefaultTools({ pool: options.database.pool }),
      clock: () => new Date(),
    })
    const worker = await createPipelineWorker({ connection: workerConnection, namespace: 'default', taskQueue, activities })
    return { name, taskQueue, worker, running: worker.run() }
  }
  const withHistorian = await variant('with', options.durable)
  const withoutHistorian = await variant('without', options.baseline)
  const timings: Record<string, number[]> = { with: [], without: [] }
  try {
    // One untimed warm-up round each: bundle caches, JIT, connection pools.
    for (const target of [withHistorian, withoutHistorian]) await runRound(client, target, `warm${runTag}`, options.pipelinesPerRound)
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? [withHistorian, withoutHistorian] : [withoutHistorian, withHistorian]
      for (const target of order) {
        const seconds = await runRound(client, target, `r${round}${runTag}`, options.pipelinesPerRound)
        timings[target.name]!.push(seconds)
        options.onRound?.(target.name, round, options.pipelinesPerRound / seconds)
      }
    }
  } finally {
    withHistorian.worker.shutdown()
    withoutHistorian.worker.shutdown()
    await Promise.allSettled([withHistorian.running, withoutHistorian.running])
    await clientConnection.close()
    await workerConnection.close()
  }
  const perSec = (seconds: number[]) => seconds.map((s) => options.pipelinesPerRound / s)
  const pipelinesPerSecWith = median(perSec(timings.with!))
  const pipelinesPerSecWithout = median(perSec(timings.without!))
  return {
    historianOverheadRatio: pipelinesPerSecWith / pipelinesPerSecWithout,
    pipelinesPerSecWith,
    pipelinesPerSecWithout,
    roundsWith: perSec(timings.with!),
    roundsWithout: perSec(timings.without!),
    roundsPerVariant: options.rounds,
    pipelinesPerRound: options.pipelinesPerRound,
  }
}

/** Runs `count` pipelines at once on a variant and returns the seconds until all have completed. */
async function runRound(client: Client, variant: Variant, roundTag: string, count: number): Promise<number> {
  const started = performance.now()
  const handles = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      startPipeline(client, { tenantId: `bench_${variant.name}`, taskId: `${roundTag}-${i}`, input: TASK_INPUTS[i % TASK_INPUTS.length]!, requestedBy: 'bench' }, variant.taskQueue),
    ),
  )
  const results = await Promise.all(handles.map((handle) => handle.result()))
  const failed = results.filter((result) => result.status !== 'completed')
  if (failed.length > 0) throw new Error(`${failed.length} benchmark pipelines failed on ${variant.name}: ${failed[0]!.errorCode}`)
  return (performance.now() - started) / 1_000
}
