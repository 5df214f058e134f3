import type pg from 'pg'
import { readAllDecisions } from '../historian/lifecycle/lifecycleDecisions'
import { deriveLifecycle } from '../historian/lifecycle/lifecycleState'
import { retentionAsOf } from '../historian/lifecycle/retentionAsOf'
import { StreamTombstonedError, type EventStore, type RecordedEvent } from '../historian/port'
import { recordDeadLetter } from './projectionDeadLetters'
import { forgetLiveDeadLetters, refoldTask } from './lifecycleFollower'
import { liveTables, type Projection } from './projection'
import { readRecorded } from './readOutcome'
import { applyReadEvents, readCheckpoint, withClient } from './runner'

/** What one sweep did. */
export interface SweepReport {
  /** The time retention was judged at. */
  readonly at: Date
  /** Streams whose decided retention (maxAge, maxCount) the sweep refolded. */
  readonly streams: readonly string[]
  /** Per projection, the checkpoint its rows were swept at. */
  readonly positions: Readonly<Record<string, bigint>>
}

/** Thrown when a projection's checkpoint kept moving while the sweep tried to refold it. */
export class SweepRaceError extends Error {
  constructor(
    readonly projection: string,
    readonly attempts: number,
  ) {
    super(`projection ${projection}: the checkpoint kept moving; the retention sweep gave up after ${attempts} attempts (run it again)`)
    this.name = 'SweepRaceError'
  }
}

const MAX_ATTEMPTS = 10
const PAGE = 1_000

async function readStreamAsOf(view: EventStore, stream: string, upTo: bigint): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = []
  try {
    for (;;) {
      const fromRevision = events.length === 0 ? 0n : events.at(-1)!.revision + 1n
      const page = await view.readStream(stream, { fromRevision, maxCount: PAGE })
      events.push(...page)
      if (page.length < PAGE) break
    }
  } catch (error) {
    if (!(error instanceof StreamTombstonedError)) throw error
  }
  return events.filter((event) => event.position <= upTo)
}

/**
 * The retention sweep (`annalist lifecycle sweep --at T`): every stream whose recorded decisions set a maxAge or maxCount
 * is refolded in each projection from the events the store shows as of `at` (retentionAsOf), up to the projection's
 * checkpoint, under that checkpoint's row lock. Time and new appends hide events that no decision event announces;
 * after the sweep the read models equal a rebuild from `retentionAsOf(store, at)`.
 */
export async function sweepRetention(
  store: EventStore,
  pool: pg.Pool,
  projections: readonly Projection[],
  at: Date,
  onProgress?: (projection: string, streams: number) => void,
): Promise<SweepReport> {
  const decisions = await readAllDecisions(store)
  const streams = [...decisions]
    .filter(([, list]) => {
      const derived = deriveLifecycle(list.map((one) => one.data))
      return !derived.tombstoned && (derived.metadata.maxAge !== undefined || derived.metadata.maxCount !== undefined)
    })
    .map(([stream]) => stream)
    .sort()
  const view = retentionAsOf(store, at)
  const positions: Record<string, bigint> = {}
  for (const projection of projections) {
    positions[projection.name] = await sweepProjection(view, pool, projection, streams)
    onProgress?.(projection.name, streams.length)
  }
  return { at, streams, positions }
}

async function sweepProjection(view: EventStore, pool: pg.Pool, projection: Projection, streams: readonly string[]): Promise<bigint> {
  const tables = liveTables(projection)
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const checkpoint = await readCheckpoint(pool, projection.name)
    // Read before a pooled client is held (a PGlite pool has one).
    const survivors = new Map<string, RecordedEvent[]>()
    for (const stream of streams) survivors.set(stream, await readStreamAsOf(view, stream, checkpoint))
    const swept = await withClient(pool, async (client) => {
      await client.query('begin')
      try {
        const locked = await client.query<{ position: string }>(`select position from projection_checkpoints where name = $1 for update`, [projection.name])
        if (BigInt(locked.rows[0]?.position ?? 0) !== checkpoint) {
          await client.query('rollback')
          return false
        }
        for (const [stream, events] of survivors) {
          await refoldTask(client, projection, tables, stream, events.map(readRecorded), { forgetDeadLetters: forgetLiveDeadLetters }, async (kept) => {
            await applyReadEvents(client, projection, tables, kept, (event, error) => recordDeadLetter(client, projection.name, event, error))
          })
        }
        await client.query('commit')
        return true
      } catch (error) {
        await client.query('rollback').catch(() => undefined)
        throw error
      }
    })
    if (swept) return checkpoint
  }
  throw new SweepRaceError(projection.name, MAX_ATTEMPTS)
}
