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
}

/** Lists dead letters in log order, for one projection or all of them. */
export async function listDeadLetters(pool: pg.Pool, projection?: string): Promise<DeadLetter[]> {
  const result = await pool.query<DeadLetterRow>(
    `select projection, position, event_id, event_type, stream_name, error, failed_at
       from projection_dead_letters
      where $1::text is null or projection = $1::text
      order by position, projection`,
    [projection ?? null],
  )
  return result.rows.map((row) => ({
    projection: row.projection,
    position: BigInt(row.position),
    eventId: row.event_id,
    eventType: row.event_type,
    streamName: row.stream_name,
    error: row.error,
    failedAt: row.failed_at,
  }))
}
