import { randomBytes } from 'node:crypto'
import type pg from 'pg'
import type { EventStore } from '../historian/port'
import { describeError } from './deadLetters'
import { liveTables, suffixedTables, type Projection, type ProjectionTables } from './projection'
import { applyEvents, readAfter, readCheckpoint, withClient } from './runner'

/** The outcome of rebuilding projections from position 0 and comparing them with their live read models. */
export interface RebuildComparison {
  readonly matches: boolean
  /** One line per differing row or dead letter, naming the table, the row's key and the differing columns. */
  readonly differences: readonly string[]
  /** The checkpoint each projection was rebuilt to and compared at. */
  readonly positions: Readonly<Record<string, bigint>>
}

export interface RebuildOptions {
  /** Events read and applied per transaction while rebuilding. Default 500. */
  readonly batchSize?: number
  /** Differing rows reported per table at most. Default 50. */
  readonly maxDifferencesPerTable?: number
}

/** Thrown when the live checkpoint keeps moving so fast that a rebuild cannot catch it up to compare. */
export class RebuildRaceError extends Error {
  constructor(
    readonly projection: string,
    readonly attempts: number,
  ) {
    super(`projection ${projection}: live checkpoint kept moving; gave up comparing after ${attempts} attempts`)
    this.name = 'RebuildRaceError'
  }
}

const MAX_CATCH_UP_ATTEMPTS = 20

/**
 * Rebuilds every projection from position 0 into scratch copies of its tables (`create table ... (like ... including all)`),
 * up to the live checkpoint, then compares scratch and live tables row by row, order-independently, with no column
 * excluded, while holding a share lock on the live checkpoint row so that the live runner cannot commit in between.
 * Events that fail to read or apply during the rebuild are compared with the live dead letters by position.
 * The scratch tables are always dropped. Nothing live is changed (beyond making sure each checkpoint row exists).
 */
export async function rebuildAndCompare(
  store: EventStore,
  pool: pg.Pool,
  projections: readonly Projection[],
  options: RebuildOptions = {},
): Promise<RebuildComparison> {
  const batchSize = options.batchSize ?? 500
  const maxDifferences = options.maxDifferencesPerTable ?? 50
  const differences: string[] = []
  const positions: Record<string, bigint> = {}
  for (const projection of projections) {
    const compared = await rebuildOne(store, pool, projection, batchSize, maxDifferences)
    differences.push(...compared.differences)
    positions[projection.name] = compared.position
  }
  return { matches: differences.length === 0, differences, positions }
}

async function rebuildOne(
  store: EventStore,
  pool: pg.Pool,
  projection: Projection,
  batchSize: number,
  maxDifferences: number,
): Promise<{ differences: string[]; position: bigint }> {
  const live = liveTables(projection)
  const scratch = suffixedTables(projection, `_rebuild_${randomBytes(4).toString('hex')}`)
  const created: string[] = []
  try {
    for (const table of projection.tables) {
      await pool.query(`create table ${scratch[table]!} (like ${live[table]!} including all)`)
      created.push(scratch[table]!)
    }
    await pool.query(`insert into projection_checkpoints (name, position) values ($1, 0) on conflict (name) do nothing`, [projection.name])

    let target = await readCheckpoint(pool, projection.name)
    let built = 0n
    const poisoned = new Map<bigint, string>()
    for (let attempt = 1; attempt <= MAX_CATCH_UP_ATTEMPTS; attempt++) {
      if (target < built) {
        // The live checkpoint was reset below what we built: start again from 0.
        for (const table of created) await pool.query(`truncate ${table}`)
        built = 0n
        poisoned.clear()
      }
      built = await buildScratch(store, pool, projection, scratch, built, target, batchSize, poisoned)

      const compared = await withClient(pool, async (client): Promise<{ differences: string[] } | { moved: bigint }> => {
        await client.query('begin')
        try {
          const locked = await client.query<{ position: string }>(`select position from projection_checkpoints where name = $1 for share`, [projection.name])
          const current = BigInt(locked.rows[0]!.position)
          if (current !== target) {
            await client.query('commit')
            return { moved: current }
          }
          const differences = [
            ...(await compareTables(client, projection, live, scratch, maxDifferences)),
            ...(await compareDeadLetters(client, projection.name, poisoned, target)),
          ]
          await client.query('commit')
          return { differences }
        } catch (error) {
          await client.query('rollback').catch(() => undefined)
          throw error
        }
      })
      if ('differences' in compared) return { differences: compared.differences, position: target }
      target = compared.moved
    }
    throw new RebuildRaceError(projection.name, MAX_CATCH_UP_ATTEMPTS)
  } finally {
    for (const table of created) await pool.query(`drop table if exists ${table}`)
  }
}

/** Applies every event after `built` and up to `target` to the scratch tables; returns `target`. */
async function buildScratch(
  store: EventStore,
  pool: pg.Pool,
  projection: Projection,
  scratch: ProjectionTables,
  built: bigint,
  target: bigint,
  batchSize: number,
  poisoned: Map<bigint, string>,
): Promise<bigint> {
  let after = built
  while (after < target) {
    const events = await store.readAll({ after: readAfter(after), maxCount: batchSize })
    const wanted = events.filter((event) => event.position <= target)
    if (wanted.length > 0) {
      await withClient(pool, async (client) => {
        await client.query('begin')
        try {
          await applyEvents(client, projection, scratch, wanted, async (event, error) => {
            poisoned.set(event.position, describeError(error))
          })
          await client.query('commit')
        } catch (error) {
          await client.query('rollback').catch(() => undefined)
          throw error
        }
      })
    }
    const last = events[events.length - 1]
    if (!last || wanted.length < events.length || events.length < batchSize) break
    after = last.position
  }
  return target
}

type Row = Record<string, unknown>

async function primaryKeyColumns(client: pg.PoolClient, table: string): Promise<string[]> {
  const result = await client.query<{ column: string }>(
    `select a.attname as column
       from pg_index i
       join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
      where i.indrelid = $1::regclass and i.indisprimary
      order by array_position(i.indkey::int2[], a.attnum)`,
    [table],
  )
  return result.rows.map((row) => row.column)
}

function describeKey(row: Row, key: readonly string[]): string {
  return key.map((column) => `${column}=${JSON.stringify(row[column])}`).join(', ')
}

async function compareTables(
  client: pg.PoolClient,
  projection: Projection,
  live: ProjectionTables,
  scratch: ProjectionTables,
  maxDifferences: number,
): Promise<string[]> {
  const differences: string[] = []
  for (const table of projection.tables) {
    const result = await client.query<{ side: 'live' | 'rebuild'; row: Row }>(
      `select side, row from (
         (select 'live' as side, only_live.row from (
            select to_jsonb(l) as row from ${live[table]} l except all select to_jsonb(r) from ${scratch[table]} r) only_live)
         union all
         (select 'rebuild' as side, only_rebuild.row from (
            select to_jsonb(r) as row from ${scratch[table]} r except all select to_jsonb(l) from ${live[table]} l) only_rebuild)
       ) diff
       limit $1`,
      [maxDifferences * 2 + 1],
    )
    if (result.rows.length === 0) continue
    const key = await primaryKeyColumns(client, live[table]!)
    const keyOf = (row: Row) => (key.length > 0 ? describeKey(row, key) : JSON.stringify(row))
    const rebuilt = new Map(result.rows.filter((diff) => diff.side === 'rebuild').map((diff) => [keyOf(diff.row), diff.row]))
    const lines: string[] = []
    for (const diff of result.rows.filter((candidate) => candidate.side === 'live')) {
      const id = keyOf(diff.row)
      const twin = rebuilt.get(id)
      if (!twin) {
        lines.push(`${table} [${id}]: in the live table but not in the rebuild`)
        continue
      }
      rebuilt.delete(id)
      const columns = Object.keys(diff.row).filter((column) => JSON.stringify(diff.row[column]) !== JSON.stringify(twin[column]))
      const detail = columns.map((column) => `${column} live ${JSON.stringify(diff.row[column])} vs rebuilt ${JSON.stringify(twin[column])}`)
      lines.push(`${table} [${id}]: ${detail.join('; ') || 'rows differ'}`)
    }
    for (const id of rebuilt.keys()) lines.push(`${table} [${id}]: in the rebuild but missing from the live table`)
    differences.push(...lines.slice(0, maxDifferences))
    if (lines.length > maxDifferences || result.rows.length > maxDifferences * 2) differences.push(`${table}: more differences not shown`)
  }
  return differences
}

async function compareDeadLetters(client: pg.PoolClient, projection: string, poisoned: ReadonlyMap<bigint, string>, target: bigint): Promise<string[]> {
  const result = await client.query<{ position: string; error: string }>(
    `select position, error from projection_dead_letters where projection = $1 and position <= $2 order by position`,
    [projection, target.toString()],
  )
  const live = new Map(result.rows.map((row) => [BigInt(row.position), row.error]))
  const differences: string[] = []
  for (const [position, error] of live) {
    if (!poisoned.has(position)) differences.push(`${projection} dead letter at position ${position}: live failed (${error}) but the rebuild applied it`)
  }
  for (const [position, error] of poisoned) {
    if (!live.has(position)) differences.push(`${projection} dead letter at position ${position}: the rebuild failed (${error}) but the live projection has no dead letter`)
  }
  return differences
}
