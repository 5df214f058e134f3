import type pg from 'pg'
import type { RecordedEvent } from '../historian/port'

/** An event one projection could not read or apply, with the error it raised. */
export interface DeadLetter {
  readonly projection: string
  readonly position: bigint
  readonly eventId: string
  readonly eventType: string
  readonly streamName: string
  readonly error: string
  readonly failedAt: Date
  /** 1 when first recorded, +1 for every retry that failed again. */
  readonly attempts: number
  readonly lastRetriedAt: Date | null
}

/** How a dead letter was resolved: applied by `dead-letters retry`, or by a rebuild of its projection. */
export const DeadLetterResolution = { retried: 'retried', rebuilt: 'rebuilt' } as const
export type DeadLetterResolution = (typeof DeadLetterResolution)[keyof typeof DeadLetterResolution]

/** A dead letter that has been resolved, as kept in projection_dead_letter_history. */
export interface ResolvedDeadLetter extends Omit<DeadLetter, 'lastRetriedAt'> {
  readonly resolvedAt: Date
  readonly resolution: DeadLetterResolution
}

/** How an error is written into a dead letter: its class name and message. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`
  return String(error)
}

/**
 * Records that `projection` could not process `event`, inside the caller's transaction (so it commits with the batch
 * and the checkpoint). The first failure is kept: a replay that fails on the same event again changes nothing.
 */
export async function recordDeadLetter(client: pg.ClientBase, projection: string, event: RecordedEvent, error: unknown): Promise<void> {
  await client.query(
    `insert into projection_dead_letters (projection, position, event_id, event_type, stream_name, error, failed_at)
     values ($1, $2, $3, $4, $5, $6, now())
     on conflict (projection, position) do nothing`,
    [projection, event.position.toString(), event.eventId, event.type, event.streamName, describeError(error)],
  )
}

interface DeadLetterRow {
  projection: string
  position: string
  event_id: string
  event_type: string
  stream_name: string
  error: string
  failed_at: Date
  attempts: number
  last_retried_at: Date | null
}

const LETTER_COLUMNS = 'projection, position, event_id, event_type, stream_name, error, failed_at, attempts'

function toDeadLetter(row: DeadLetterRow): DeadLetter {
  return {
    projection: row.projection,
    position: BigInt(row.position),
    eventId: row.event_id,
    eventType: row.event_type,
    streamName: row.stream_name,
    error: row.error,
    failedAt: row.failed_at,
    attempts: row.attempts,
    lastRetriedAt: row.last_retried_at,
  }
}

/** Lists dead letters in log order, for one projection or all of them. */
export async function listDeadLetters(pool: pg.Pool | pg.ClientBase, projection?: string): Promise<DeadLetter[]> {
  const result = await pool.query<DeadLetterRow>(
    `select ${LETTER_COLUMNS}, last_retried_at
       from projection_dead_letters
      where $1::text is null or projection = $1::text
      order by position, projection`,
    [projection ?? null],
  )
  return result.rows.map(toDeadLetter)
}

/** Lists resolved dead letters in the order they were resolved, for one projection or all of them. */
export async function listResolvedDeadLetters(pool: pg.Pool, projection?: string): Promise<ResolvedDeadLetter[]> {
  const result = await pool.query<DeadLetterRow & { resolved_at: Date; resolution: DeadLetterResolution }>(
    `select ${LETTER_COLUMNS}, null as last_retried_at, resolved_at, resolution
       from projection_dead_letter_history
      where $1::text is null or projection = $1::text
      order by id`,
    [projection ?? null],
  )
  return result.rows.map((row) => {
    const { lastRetriedAt: _unused, ...letter } = toDeadLetter(row)
    return { ...letter, resolvedAt: row.resolved_at, resolution: row.resolution }
  })
}

/** Moves a dead letter to projection_dead_letter_history, in the caller's transaction: its event has now been applied. */
export async function resolveDeadLetter(client: pg.ClientBase, projection: string, position: bigint, resolution: DeadLetterResolution): Promise<void> {
  await client.query(
    `with resolved as (delete from projection_dead_letters where projection = $1 and position = $2 returning *)
     insert into projection_dead_letter_history (${LETTER_COLUMNS}, resolution)
     select ${LETTER_COLUMNS}, $3 from resolved`,
    [projection, position.toString(), resolution],
  )
}

/** Records that a retry of a dead letter failed again, in the caller's transaction: the new error, one more attempt. */
export async function recordFailedRetry(client: pg.ClientBase, projection: string, position: bigint, error: unknown): Promise<void> {
  await client.query(
    `update projection_dead_letters set error = $3, attempts = attempts + 1, last_retried_at = now() where projection = $1 and position = $2`,
    [projection, position.toString(), describeError(error)],
  )
}

/**
 * Replaces a projection's dead letters with the ones a rebuild found, in the rebuild's swap transaction: a letter the
 * rebuild applied is resolved (moved to the history), one it failed on again keeps its row with the new error (one more
 * attempt if it was being retried), and a new failure becomes a new letter. Returns the resolved positions.
 */
export async function replaceDeadLetters(
  client: pg.ClientBase,
  projection: string,
  failures: readonly { readonly event: RecordedEvent; readonly error: string }[],
  options: { resolution: DeadLetterResolution; retrying: readonly bigint[] },
): Promise<{ resolved: bigint[] }> {
  const failed = new Map(failures.map((failure) => [failure.event.position, failure]))
  const retrying = new Set(options.retrying)
  const existing = await client.query<{ position: string }>(`select position from projection_dead_letters where projection = $1 for update`, [projection])
  const resolved: bigint[] = []
  for (const row of existing.rows) {
    const position = BigInt(row.position)
    const failure = failed.get(position)
    if (!failure) {
      await resolveDeadLetter(client, projection, position, options.resolution)
      resolved.push(position)
    } else if (retrying.has(position)) {
      await recordFailedRetry(client, projection, position, failure.error)
    } else {
      await client.query(`update projection_dead_letters set error = $3 where projection = $1 and position = $2`, [projection, row.position, failure.error])
    }
    failed.delete(position)
  }
  for (const failure of failed.values()) await recordDeadLetter(client, projection, failure.event, failure.error)
  return { resolved }
}
