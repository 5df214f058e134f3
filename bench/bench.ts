import { writeFileSync } from 'node:fs'
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
export async function benchCommand(options: { json?: string; pipelines: string; rounds: string }): Promise<void> {
  const pipelinesPerRound = parseCount(options.pipelines, '--pipelines')
  const rounds = parseCount(options.rounds, '--rounds')
  const config = loadConfig()
  const temporal = await resolveTemporal({ allowBuild: true, onProgress: (line) => console.error(`temporal: ${line}`) })
  const database = await openDatabase({ url: config.databaseUrl, pgliteDataDir: config.databaseUrl ? undefined : 'memory://' })
  const durable = new PostgresEventStore(database)
  try {
    console.log(`pipeline throughput: ${rounds} interleaved rounds x ${pipelinesPerRound} pipelines, historian on ${database.kind} vs in memory`)
    const throughput = await measurePipelineThroughput({
      temporalAddress: temporal.address,
      database,
      durable,
      baseline: new InMemoryEventStore(),
      pipelinesPerRound,
      rounds,
      onRound: (variant, round, perSec) => console.log(`  round ${round + 1}/${rounds} ${variant.padEnd(7)} ${perSec.toFixed(2)} pipelines/s`),
    })
    const figures = { ...throughput, historianStore: database.kind, node: process.version }
    console.log(JSON.stringify(figures, null, 2))
    if (options.json) writeFileSync(options.json, `${JSON.stringify(figures, null, 2)}\n`)
  } finally {
    await durable.close()
    await database.close()
    await temporal.stop()
  }
}
