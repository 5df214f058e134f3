import type pg from 'pg'
import { taskStreamName } from '../../historian/streams'
import { defaultProjections } from '../../projections/defaultProjections'
import { readCheckpoint } from '../../projections/runner'
import type { TaskRef } from '../../workflows/api'

/** The highest global position in the log: what the projections must reach. */
export async function headPosition(pool: pg.Pool): Promise<bigint> {
  const result = await pool.query<{ position: string }>('select coalesce(max(position), 0)::text as position from events')
  return BigInt(result.rows[0]!.position)
}

/** The lowest checkpoint of the default projections: how far every read model has got. */
export async function lowestCheckpoint(pool: pg.Pool): Promise<bigint> {
  const checkpoints = await Promise.all(defaultProjections().map((projection) => readCheckpoint(pool, projection.name)))
  return checkpoints.reduce((low, at) => (at < low ? at : low))
}

/** Waits until every default projection's checkpoint has reached `position`; throws after `timeoutMs`. */
export async function waitForProjections(pool: pg.Pool, position: bigint, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const lowest = await lowestCheckpoint(pool)
    if (lowest >= position) return
    if (Date.now() > deadline) throw new Error(`projections did not reach position ${position} within ${timeoutMs} ms (the slowest is at ${lowest})`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Events stored so far in these tasks' streams. */
export async function countTaskEvents(pool: pg.Pool, tasks: readonly TaskRef[]): Promise<number> {
  const streams = tasks.map((task) => taskStreamName(task.tenantId, task.taskId))
  const result = await pool.query<{ count: string }>('select count(*)::text as count from events where stream_name = any($1::text[])', [streams])
  return Number(result.rows[0]!.count)
}
