import type pg from 'pg'
import { decisionOf } from '../historian/lifecycle/lifecycleDecisions'
import { decisionHides, type RecordedDecision } from '../historian/lifecycle/lifecycleState'
import { StreamTombstonedError, type EventStore, type RecordedEvent } from '../historian/port'
import { parseTaskStreamName } from '../historian/streams'
import type { Projection, ProjectionTables } from './projection'
import { readRecorded, type ReadOutcome } from './readOutcome'

/**
 * What a projection needs to follow the lifecycle decisions of one batch: for each decision (by its position) the
 * events of its target stream that stay visible, in stream order, read beforehand (never while a pooled client is held:
 * a PGlite pool has one), and how to drop the dead letters of the stream's events that no longer are.
 */
export interface LifecycleFollowing {
  readonly survivors: ReadonlyMap<bigint, readonly ReadOutcome[]>
  forgetDeadLetters(client: pg.PoolClient, projection: string, stream: string, kept: ReadonlySet<bigint>): Promise<void>
}

/** The decision an event as read records, if it is one (projections/runner.ts hands these to followDecision). */
export function readDecision(outcome: ReadOutcome): RecordedDecision | undefined {
  return 'stored' in outcome ? decisionOf(outcome.stored) : undefined
}

/** How long a stream page is when a target stream is read again. */
const STREAM_PAGE = 1_000

/** Every event of `stream` the store shows now, in revision order; a tombstoned stream shows none. */
async function readVisibleStream(store: EventStore, stream: string): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = []
  try {
    for (;;) {
      const fromRevision = events.length === 0 ? 0n : events.at(-1)!.revision + 1n
      const page = await store.readStream(stream, { fromRevision, maxCount: STREAM_PAGE })
      events.push(...page)
      if (page.length < STREAM_PAGE) return events
    }
  } catch (error) {
    if (error instanceof StreamTombstonedError) return []
    throw error
  }
}

/**
 * The survivors of each decision among `read`: the target stream's events before the decision in the log that the
 * store still shows and that the decision itself hides not (it may not be applied to the store yet). `at` judges
 * maxAge (default: each decision's own time); the sweep passes its time.
 */
export async function readSurvivors(store: EventStore, read: readonly ReadOutcome[]): Promise<Map<bigint, readonly ReadOutcome[]>> {
  const survivors = new Map<bigint, readonly ReadOutcome[]>()
  for (const outcome of read) {
    const decision = readDecision(outcome)
    if (!decision) continue
    const visible = await readVisibleStream(store, decision.data.targetStream)
    const kept = visible.filter((event) => event.position < decision.position && !decisionHides(decision.data, event))
    survivors.set(decision.position, kept.map(readRecorded))
  }
  return survivors
}

/**
 * Makes one projection's rows of a task what its surviving events alone give: forgets the task's rows
 * (Projection.forgetTask) and the dead letters of events no longer shown, then applies the survivors again through
 * `applySurvivors`. Rows of a task come only from its own stream, so this is what a rebuild holds at that point of the
 * log. A projection without forgetTask keeps its rows.
 */
export async function refoldTask(
  client: pg.PoolClient,
  projection: Projection,
  tables: ProjectionTables,
  stream: string,
  survivors: readonly ReadOutcome[],
  following: Pick<LifecycleFollowing, 'forgetDeadLetters'>,
  applySurvivors: (survivors: readonly ReadOutcome[]) => Promise<void>,
): Promise<void> {
  if (!projection.forgetTask) return
  const { tenantId, taskId } = parseTaskStreamName(stream)
  await projection.forgetTask(client, tables, tenantId, taskId)
  await following.forgetDeadLetters(client, projection.name, stream, new Set(survivors.map((outcome) => outcome.recorded.position)))
  await applySurvivors(survivors)
}

/** The live runner's dead-letter forgetting: deletes the projection's dead letters of `stream` that are not kept. */
export async function forgetLiveDeadLetters(client: pg.PoolClient, projection: string, stream: string, kept: ReadonlySet<bigint>): Promise<void> {
  await client.query(`delete from projection_dead_letters where projection = $1 and stream_name = $2 and not (position = any($3::bigint[]))`, [
    projection,
    stream,
    [...kept].map(String),
  ])
}
