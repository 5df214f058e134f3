import type { Database } from '../historian/adapters/postgres/database'
import { PostgresEventStore } from '../historian/adapters/postgres/postgresEventStore'
import { Historian, toStoredEvent } from '../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../historian/integrity/tenantKeyRing'
import { defaultProjections } from '../projections/defaultProjections'
import { rebuildProjections } from '../projections/rebuild'
import { ProjectionRunner, readAfter } from '../projections/runner'
import { appendTaskRuns } from '../dev/fixtures/taskRuns'
import { interleaveRounds, median, timeMs } from './interleavedRounds'

/** What `measureRebuildVsRawRead` found: medians of interleaved rounds. */
export interface RebuildVsRawReadFigures {
  /** Rebuild events/s divided by raw read-and-parse events/s (goal >= 0.3, stretch 0.5). */
  readonly rebuildVsRawReadRatio: number
  readonly rebuildEventsPerSec: number
  readonly rawReadEventsPerSec: number
  readonly events: number
  readonly tenants: number
  readonly batchSize: number
  readonly projections: readonly string[]
  readonly rounds: { readonly rebuild: readonly number[]; readonly rawRead: readonly number[] }
  readonly store: Database['kind']
}

/**
 * Over one log of realistic pipeline runs (7 events per task, several tenants), events per second of rebuilding every
 * default projection into fresh tables and swapping them in (`rebuildProjections`: one reading of the log for all of
 * them) against a raw sequential read of the same log in the same batch size with each event parsed (toStoredEvent:
 * schema validation and upcasting). Every rebuild must equal the model it replaced, or the benchmark fails.
 */
export async function measureRebuildVsRawRead(options: {
  database: Database
  events?: number
  tenants?: number
  batchSize?: number
  rounds?: number
  onProgress?: (line: string) => void
}): Promise<RebuildVsRawReadFigures> {
  const { database } = options
  const events = options.events ?? 21_000
  const tenants = options.tenants ?? 5
  const batchSize = options.batchSize ?? 2_000
  const store = new PostgresEventStore(database)
  try {
    const historian = new Historian(store, { keyRing: TenantKeyRing.fromText(generateIntegrityKey()) })
    options.onProgress?.(`appending ${events} events of whole pipeline runs for ${tenants} tenants...`)
    await appendTaskRuns(historian, { tenants, events })
    const projections = defaultProjections()
    // Build the live models incrementally first: every rebuild below goes up to their checkpoints and must equal them.
    options.onProgress?.('projecting the log incrementally (the models each rebuild is compared with)...')
    await new ProjectionRunner({ store, pool: database.pool, projections }).catchUp()
    const rounds = await interleaveRounds(['rebuild', 'rawRead'] as const, options.rounds ?? 3, async (variant, round) => {
      let counted = 0
      const ms = await timeMs(async () => {
        if (variant === 'rebuild') {
          const results = await rebuildProjections(store, database.pool, projections, { batchSize })
          if (results.some((result) => !result.matchedIncremental)) throw new Error(`a rebuild differed from the model it replaced: ${results.flatMap((result) => result.differences).join('; ')}`)
          counted = results[0]!.events
          return
        }
        for (let after = 0n; ; ) {
          const page = await store.readAll({ after: readAfter(after), maxCount: batchSize })
          for (const recorded of page) toStoredEvent(recorded)
          counted += page.length
          if (page.length < batchSize) break
          after = page.at(-1)!.position
        }
      })
      const perSec = (counted / ms) * 1000
      options.onProgress?.(`round ${round + 1} ${variant.padEnd(7)} ${perSec.toFixed(0)} events/s`)
      return perSec
    })
    const rebuildEventsPerSec = median(rounds.rebuild)
    const rawReadEventsPerSec = median(rounds.rawRead)
    return {
      rebuildVsRawReadRatio: rebuildEventsPerSec / rawReadEventsPerSec,
      rebuildEventsPerSec,
      rawReadEventsPerSec,
      events,
      tenants,
      batchSize,
      projections: projections.map((projection) => projection.name),
      rounds,
      store: database.kind,
    }
  } finally {
    await store.close()
  }
}
