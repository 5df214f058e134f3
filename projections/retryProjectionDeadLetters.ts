import type pg from 'pg'
import type { EventStore, RecordedEvent } from '../historian/port'
import { describeError, listDeadLetters, recordFailedRetry, resolveDeadLetter, type DeadLetter } from './projectionDeadLetters'
import { liveTables, type Projection } from './projection'
import { rebuildProjection } from './rebuild'
import { applyEvents, withClient } from './runner'

/** What to retry: every dead letter, one projection's, or the one at a position. */
export interface RetryDeadLettersOptions {
  readonly projection?: string
  readonly position?: bigint
  /** Batch size of a retry that rebuilds its projection. Default 2,000 (rebuildProjection's). */
  readonly batchSize?: number
}

/** What a retry did with one dead letter. */
export interface DeadLetterRetry {
  readonly projection: string
  readonly position: bigint
  readonly eventType: string
  /** `applied`: the event is in the read model now and the letter is resolved (recorded in the history); `failed`: it failed again. */
  readonly outcome: 'applied' | 'failed'
  /** `event`: only this event was applied (an order-independent projection); `rebuild`: the projection was rebuilt around it. */
  readonly method: 'event' | 'rebuild'
  /** Tries so far, the first failure included. */
  readonly attempts: number
  /** The error of the failed retry, null when applied. */
  readonly error: string | null
}

/** Thrown when a retry names a projection that is not among those it was given. */
export class UnknownProjectionError extends Error {
  constructor(
    readonly projection: string,
    readonly known: readonly string[],
  ) {
    super(`unknown projection ${JSON.stringify(projection)}; known projections: ${known.join(', ')}`)
    this.name = 'UnknownProjectionError'
  }
}

/**
 * Retries dead letters: re-reads each event from the store by its position and applies it to the live read model,
 * through the runner's own savepoint path (applyEvents). Applied: the letter moves to projection_dead_letter_history
 * (resolution `retried`) in the same transaction. Failed again: the letter keeps its row with the new error and one
 * more attempt.
 *
 * Order: a retried event is applied after events that follow it in the log. That is only exact for a projection whose
 * rows do not depend on the order events arrive in (`orderIndependent`, e.g. one row per event keyed by position, where
 * idempotence per event is all that is needed): those get just the event, in a transaction that holds the projection's
 * checkpoint row FOR SHARE, so that a rebuild cannot swap tables under it. A projection that folds events in log order
 * (task_summary ignores an event older than the row's last position) would drop or misplace a late event, so for it a
 * retry rebuilds the whole projection (rebuildProjection), in which the fixed event is applied in its place; any other
 * of its dead letters that now apply are resolved by that rebuild too and reported as well.
 */
export async function retryDeadLetters(
  store: EventStore,
  pool: pg.Pool,
  projections: readonly Projection[],
  options: RetryDeadLettersOptions = {},
): Promise<DeadLetterRetry[]> {
  const known = projections.map((projection) => projection.name)
  if (options.projection !== undefined && !known.includes(options.projection)) throw new UnknownProjectionError(options.projection, known)
  const letters = (await listDeadLetters(pool, options.projection)).filter(
    (letter) => known.includes(letter.projection) && (options.position === undefined || letter.position === options.position),
  )
  const retries: DeadLetterRetry[] = []
  for (const projection of projections) {
    const mine = letters.filter((letter) => letter.projection === projection.name)
    if (mine.length === 0) continue
    if (projection.orderIndependent === true) {
      for (const letter of mine) retries.push(await retryEvent(store, pool, projection, letter))
    } else {
      retries.push(...(await retryByRebuild(store, pool, projection, mine, options.batchSize)))
    }
  }
  return retries
}

async function retryEvent(store: EventStore, pool: pg.Pool, projection: Projection, letter: DeadLetter): Promise<DeadLetterRetry> {
  const [found] = await store.readAll({ after: letter.position - 1n > 0n ? letter.position - 1n : undefined, maxCount: 1 })
  const event: RecordedEvent | undefined = found?.position === letter.position ? found : undefined
  return withClient(pool, async (client) => {
    await client.query('begin')
    try {
      await client.query(`select 1 from projection_checkpoints where name = $1 for share`, [projection.name])
      const current = await client.query<{ attempts: number }>(
        `select attempts from projection_dead_letters where projection = $1 and position = $2 for update`,
        [projection.name, letter.position.toString()],
      )
      const attempts = current.rows[0]?.attempts
      let result: DeadLetterRetry
      if (attempts === undefined) {
        // Resolved meanwhile by another retry or a rebuild.
        result = { ...describe(letter, 'event'), outcome: 'applied', attempts: letter.attempts, error: null }
      } else if (!event) {
        const error = `the event at position ${letter.position} is no longer readable (its stream was deleted or it expired)`
        await recordFailedRetry(client, projection.name, letter.position, error)
        result = { ...describe(letter, 'event'), outcome: 'failed', attempts: attempts + 1, error }
      } else {
        let failure: unknown
        const applied = await applyEvents(client, projection, liveTables(projection), [event], async (_event, error) => {
          failure = error
          await recordFailedRetry(client, projection.name, letter.position, error)
        })
        if (applied.applied === 1) await resolveDeadLetter(client, projection.name, letter.position, 'retried')
        result =
          applied.applied === 1
            ? { ...describe(letter, 'event'), outcome: 'applied', attempts: attempts + 1, error: null }
            : { ...describe(letter, 'event'), outcome: 'failed', attempts: attempts + 1, error: describeError(failure) }
      }
      await client.query('commit')
      return result
    } catch (error) {
      await client.query('rollback').catch(() => undefined)
      throw error
    }
  })
}

async function retryByRebuild(
  store: EventStore,
  pool: pg.Pool,
  projection: Projection,
  letters: readonly DeadLetter[],
  batchSize: number | undefined,
): Promise<DeadLetterRetry[]> {
  const before = new Map((await listDeadLetters(pool, projection.name)).map((letter) => [letter.position, letter]))
  const rebuilt = await rebuildProjection(store, pool, projection, {
    batchSize,
    resolution: 'retried',
    retrying: letters.map((letter) => letter.position),
  })
  const remaining = new Map((await listDeadLetters(pool, projection.name)).map((letter) => [letter.position, letter]))
  const requested = new Set(letters.map((letter) => letter.position))
  const retries = letters.map((letter): DeadLetterRetry => {
    const still = remaining.get(letter.position)
    return still
      ? { ...describe(letter, 'rebuild'), outcome: 'failed', attempts: still.attempts, error: still.error }
      : { ...describe(letter, 'rebuild'), outcome: 'applied', attempts: letter.attempts + 1, error: null }
  })
  // Letters not asked for that the rebuild applied as well: say so rather than let them vanish from the output.
  for (const position of rebuilt.resolvedDeadLetters.filter((resolved) => !requested.has(resolved))) {
    const letter = before.get(position)
    retries.push({
      projection: projection.name,
      position,
      eventType: letter?.eventType ?? '(unknown)',
      outcome: 'applied',
      method: 'rebuild',
      attempts: (letter?.attempts ?? 0) + 1,
      error: null,
    })
  }
  return retries
}

function describe(letter: DeadLetter, method: DeadLetterRetry['method']): Pick<DeadLetterRetry, 'projection' | 'position' | 'eventType' | 'method'> {
  return { projection: letter.projection, position: letter.position, eventType: letter.eventType, method }
}
