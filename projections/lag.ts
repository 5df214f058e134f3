import type pg from 'pg'
import { Gauge, Histogram, type Registry } from 'prom-client'
import type { EventStore } from '../historian/port'
import { readAfter, type ProjectionProgress } from './runner'

/** How far one projection is behind the event log. */
export interface ProjectionLag {
  readonly projection: string
  /** The last position the projection has committed (0 when it has never run). */
  readonly checkpoint: bigint
  /** The last position in the log (visible events only). */
  readonly headPosition: bigint
  /** Visible events after the checkpoint. */
  readonly eventsBehind: number
  /** How long ago the oldest unprojected event was recorded; 0 when caught up. */
  readonly oldestUnprojectedAgeMs: number
  /** The lag of the projection's last committed batch (commit time minus the oldest recorded_at in it); null before its first batch. */
  readonly lastBatchLagMs: number | null
  /** Its open dead letters. */
  readonly deadLetters: number
}

const LAG_READ_PAGE = 1_000

/**
 * Measures each named projection's lag: its checkpoint against the head of the log, the number of events after it, the
 * age of the oldest of them, the last batch's lag and its open dead letters. Reads the log after the lowest checkpoint
 * through the store (so it counts exactly the events a runner would process), in pages. `now` defaults to the database
 * clock, the clock `recorded_at` comes from on PostgreSQL and PGlite.
 */
export async function projectionLag(pool: pg.Pool, store: EventStore, projections: readonly string[], now?: Date): Promise<ProjectionLag[]> {
  if (projections.length === 0) return []
  const checkpoints = await pool.query<{ name: string; position: string; last_batch_lag_ms: number | null }>(
    `select name, position, last_batch_lag_ms from projection_checkpoints where name = any($1::text[])`,
    [projections],
  )
  const letters = await pool.query<{ projection: string; count: string }>(
    `select projection, count(*) as count from projection_dead_letters where projection = any($1::text[]) group by projection`,
    [projections],
  )
  const clock = now ?? (await pool.query<{ now: Date }>('select clock_timestamp() as now')).rows[0]!.now
  const checkpointOf = new Map(checkpoints.rows.map((row) => [row.name, BigInt(row.position)]))
  const lastBatchLagOf = new Map(checkpoints.rows.map((row) => [row.name, row.last_batch_lag_ms]))
  const lettersOf = new Map(letters.rows.map((row) => [row.projection, Number(row.count)]))

  const lowest = projections.reduce((low, name) => {
    const at = checkpointOf.get(name) ?? 0n
    return at < low ? at : low
  }, checkpointOf.get(projections[0]!) ?? 0n)
  const unprojected: { position: bigint; recordedAt: Date }[] = []
  for (let after = lowest; ; ) {
    const page = await store.readAll({ after: readAfter(after), maxCount: LAG_READ_PAGE })
    for (const event of page) unprojected.push({ position: event.position, recordedAt: event.recordedAt })
    if (page.length < LAG_READ_PAGE) break
    after = page.at(-1)!.position
  }
  const highestCheckpoint = [...checkpointOf.values()].reduce((high, at) => (at > high ? at : high), 0n)
  const headPosition = unprojected.at(-1)?.position ?? highestCheckpoint

  return projections.map((projection) => {
    const checkpoint = checkpointOf.get(projection) ?? 0n
    const behind = unprojected.filter((event) => event.position > checkpoint)
    const oldest = behind[0]
    return {
      projection,
      checkpoint,
      headPosition: headPosition > checkpoint ? headPosition : checkpoint,
      eventsBehind: behind.length,
      oldestUnprojectedAgeMs: oldest ? Math.max(0, clock.getTime() - oldest.recordedAt.getTime()) : 0,
      lastBatchLagMs: lastBatchLagOf.get(projection) ?? null,
      deadLetters: lettersOf.get(projection) ?? 0,
    }
  })
}

/** Observes the runner's per-event lag in the histogram; the gauges read the source on every scrape. */
export interface ProjectionMetrics {
  observe(progress: ProjectionProgress): void
}

/** Bucket bounds of annalist_projection_lag_seconds: 5 ms to 5 minutes. */
const LAG_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
/** Scrapes within this long of each other share one measurement (several gauges read the same source). */
const SOURCE_REUSE_MS = 1_000

/**
 * Registers the projection metrics in `registry`: the histogram `annalist_projection_lag_seconds{projection}` (append to
 * visible in the read model, per event, fed by `observe` from the runner's onProgress) and the gauges
 * `annalist_projection_events_behind`, `annalist_projection_oldest_unprojected_age_seconds`,
 * `annalist_projection_last_batch_lag_seconds` and `annalist_projection_dead_letters` (all `{projection}`), which call
 * `source` (projectionLag, typically) when scraped.
 */
export function registerProjectionMetrics(registry: Registry, source: () => Promise<readonly ProjectionLag[]> | readonly ProjectionLag[]): ProjectionMetrics {
  let cached: { at: number; lags: Promise<readonly ProjectionLag[]> } | undefined
  const measure = () => {
    if (!cached || Date.now() - cached.at > SOURCE_REUSE_MS) cached = { at: Date.now(), lags: Promise.resolve(source()) }
    return cached.lags
  }
  const gauge = (name: string, help: string, value: (lag: ProjectionLag) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ['projection'] as const,
      registers: [registry],
      async collect() {
        this.reset()
        for (const lag of await measure()) {
          const v = value(lag)
          if (v !== null) this.set({ projection: lag.projection }, v)
        }
      },
    })
  gauge('annalist_projection_events_behind', 'Events in the log after the projection checkpoint', (lag) => lag.eventsBehind)
  gauge('annalist_projection_oldest_unprojected_age_seconds', 'Age of the oldest event the projection has not processed (0 when caught up)', (lag) => lag.oldestUnprojectedAgeMs / 1000)
  gauge('annalist_projection_last_batch_lag_seconds', 'Lag of the last committed batch: commit time minus the oldest recorded_at in it', (lag) =>
    lag.lastBatchLagMs === null ? null : lag.lastBatchLagMs / 1000,
  )
  gauge('annalist_projection_dead_letters', 'Open dead letters of the projection', (lag) => lag.deadLetters)
  const histogram = new Histogram({
    name: 'annalist_projection_lag_seconds',
    help: 'Per event: time from being recorded in the log to its batch committing in the read model',
    labelNames: ['projection'] as const,
    buckets: LAG_BUCKETS_SECONDS,
    registers: [registry],
  })
  return {
    observe(progress) {
      for (const lagMs of progress.eventLagsMs) histogram.observe({ projection: progress.projection }, lagMs / 1000)
    },
  }
}
