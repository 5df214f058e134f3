import { defaultProjections } from '../../projections/defaultProjections'
import { projectionLag, type ProjectionLag } from '../../projections/lag'
import { loadConfig } from '../runtime/config'
import { formatRows, type OutputColumn, type OutputFormat } from '../runtime/output'
import { openStorage } from '../runtime/storage'

/** Parses a whole-number CLI option within [min, max], or throws a RangeError naming the flag. */
export function parseWholeNumber(value: string, flag: string, min: number, max: number): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) throw new RangeError(`${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`)
  return n
}

const LAG_COLUMNS: readonly OutputColumn<ProjectionLag>[] = [
  { key: 'projection', header: 'projection' },
  { key: 'checkpoint', header: 'checkpoint' },
  { key: 'headPosition', header: 'head' },
  { key: 'eventsBehind', header: 'events behind' },
  { key: 'oldestUnprojectedAgeMs', header: 'oldest unprojected (ms)' },
  { key: 'lastBatchLagMs', header: 'last batch lag (ms)' },
  { key: 'deadLetters', header: 'dead letters' },
]

/** `annalist lag`: each projection's checkpoint, the head of the log, events behind, age of the oldest unprojected event, last batch lag, dead letters. */
export async function lagCommand(options: { format: OutputFormat; watch?: boolean; interval: string }): Promise<void> {
  const intervalMs = parseWholeNumber(options.interval, '--interval', 100, 3_600_000)
  const storage = await openStorage(loadConfig())
  const names = defaultProjections().map((projection) => projection.name)
  let stopped = false
  const stop = () => {
    stopped = true
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    do {
      const lags = (await projectionLag(storage.database.pool, storage.store, names)).map((lag) => ({
        ...lag,
        oldestUnprojectedAgeMs: Math.round(lag.oldestUnprojectedAgeMs),
        lastBatchLagMs: lag.lastBatchLagMs === null ? null : Math.round(lag.lastBatchLagMs),
      }))
      if (options.watch && options.format === 'table') console.log(`\n${new Date().toISOString()}`)
      console.log(formatRows(lags, LAG_COLUMNS, options.format, 'no projections'))
      if (!options.watch) break
      const until = Date.now() + intervalMs
      while (!stopped && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, Math.min(100, until - Date.now())))
    } while (!stopped)
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    await storage.close()
  }
}
