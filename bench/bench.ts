import { writeFileSync } from 'node:fs'
import { DefaultLogger, Runtime } from '@temporalio/worker'
import { openDatabase } from '../historian/adapters/postgres/database'
import { InMemoryEventStore } from '../historian/adapters/memoryEventStore'
import { PostgresEventStore } from '../historian/adapters/postgres/postgresEventStore'
import { loadConfig } from '../cli/runtime/config'
import { resolveTemporal } from '../cli/runtime/temporalServer'
import { measurePipelineThroughput } from './pipelineThroughput'

function parseCount(value: string, flag: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 1_000) throw new RangeError(`${flag} must be a whole number from 1 to 1000, got ${JSON.stringify(value)}`)
  return n
}

/** `annalist bench` (`npm run bench`): every figure is a ratio of two variants measured side by side in this one run. */
export async function benchCommand(options: { json?: string; pipelines: string; rounds: string; modelLatencyMs: string }): Promise<void> {
  const pipelinesPerRound = parseCount(options.pipelines, '--pipelines')
  const rounds = parseCount(options.rounds, '--rounds')
  const modelLatencyMs = parseCount(options.modelLatencyMs, '--model-latency-ms')
  const config = loadConfig()
  Runtime.install({ logger: new DefaultLogger('WARN') })
  const temporal = await resolveTemporal({ allowBuild: true, onProgress: (line) => console.error(`temporal: ${line}`) })
  const database = await openDatabase({ url: config.databaseUrl, pgliteDataDir: config.databaseUrl ? undefined : 'memory://' })
  const durable = new PostgresEventStore(database)
  try {
    const measure = (latencyMs: number) => {
      console.log(`pipeline throughput, model calls of ${latencyMs} ms: ${rounds} interleaved rounds x ${pipelinesPerRound} pipelines, historian on ${database.kind} vs in memory`)
      return measurePipelineThroughput({
        temporalAddress: temporal.address,
        database,
        durable,
        baseline: new InMemoryEventStore(),
        pipelinesPerRound,
        rounds,
        modelLatencyMs: latencyMs,
        onRound: (variant, round, perSec) => console.log(`  round ${round + 1}/${rounds} ${variant.padEnd(7)} ${perSec.toFixed(2)} pipelines/s`),
      })
    }
    // The headline figure uses instant model calls: the worst case, where nothing hides the historian's cost.
    const throughput = await measure(0)
    const withLatency = await measure(modelLatencyMs)
    const figures = {
      ...throughput,
      modelLatencyMs: modelLatencyMs,
      historianOverheadRatioWithModelLatency: withLatency.historianOverheadRatio,
      pipelinesPerSecWithModelLatency: withLatency.pipelinesPerSecWith,
      pipelinesPerSecWithoutModelLatency: withLatency.pipelinesPerSecWithout,
      roundsWithModelLatency: { with: withLatency.roundsWith, without: withLatency.roundsWithout },
      historianStore: database.kind,
      node: process.version,
    }
    console.log(JSON.stringify(figures, null, 2))
    if (options.json) writeFileSync(options.json, `${JSON.stringify(figures, null, 2)}\n`)
  } finally {
    await durable.close()
    await database.close()
    await temporal.stop()
  }
}
