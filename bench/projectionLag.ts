import type { Database } from '../historian/adapters/postgres/database'
import { PostgresEventStore } from '../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../historian/integrity/tenantKeyRing'
import { defaultProjections } from '../projections/defaultProjections'
import { ProjectionRunner } from '../projections/runner'
import { appendTaskEvents } from '../dev/fixtures/eventFactory'
import { taskRunEvents } from '../dev/fixtures/taskRuns'

/** What `measureProjectionLag` found. */
export interface ProjectionLagFigures {
  /** p99 over every event and projection of commit time minus recorded_at, in ms (goal < 100). */
  readonly projectionLagMsP99: number
  readonly projectionLagMsP50: number
  readonly projectionLagMsMax: number
  readonly eventsAppended: number
  readonly appendRatePerSec: number
  readonly seconds: number
  readonly observations: number
  readonly store: Database['kind']
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of no values')
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

/**
 * A live runner (woken by LISTEN/NOTIFY, polling every 500 ms as a fallback) follows the log while a writer in the same
 * process appends single events at a steady rate; every event's lag (batch commit time minus recorded_at, on the
 * database clock, as the runner reports it) is collected for every default projection.
 */
export async function measureProjectionLag(options: { database: Database; ratePerSec?: number; seconds?: number; onProgress?: (line: string) => void }): Promise<ProjectionLagFigures> {
  const { database } = options
  const rate = options.ratePerSec ?? 200
  const seconds = options.seconds ?? 20
  const store = new PostgresEventStore(database)
  const lags: number[] = []
  const runner = new ProjectionRunner({ store, pool: database.pool, projections: defaultProjections(), onProgress: (progress) => lags.push(...progress.eventLagsMs) })
  const running = runner.start()
  try {
    const historian = new Historian(store, { keyRing: TenantKeyRing.fromText(generateIntegrityKey()) })
    const total = rate * seconds
    const started = performance.now()
    let appended = 0
    let lastPosition = 0n
    for (let task = 0; appended < total; task++) {
      const tenantId = `lag${task % 5}`
      const taskId = `task-${task}`
      for (const pending of taskRunEvents(tenantId, taskId)) {
        if (appended >= total) break
        // Hold the rate: event n goes out at n / rate seconds.
        const due = started + (appended * 1000) / rate
        const wait = due - performance.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
        lastPosition = (await appendTaskEvents(historian, tenantId, taskId, [pending])).position
        appended++
      }
      if (task % 50 === 0) options.onProgress?.(`${appended}/${total} events appended, ${lags.length} lags observed`)
    }
    const elapsed = (performance.now() - started) / 1000
    await runner.waitForPosition(lastPosition, 60_000)
    const sorted = [...lags].sort((a, b) => a - b)
    return {
      projectionLagMsP99: percentile(sorted, 99),
      projectionLagMsP50: percentile(sorted, 50),
      projectionLagMsMax: sorted.at(-1)!,
      eventsAppended: appended,
      appendRatePerSec: appended / elapsed,
      seconds: elapsed,
      observations: sorted.length,
      store: database.kind,
    }
  } finally {
    await runner.stop()
    await running
    await store.close()
  }
}
