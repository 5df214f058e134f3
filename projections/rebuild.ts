import { randomBytes } from 'node:crypto'
import pg from 'pg'
import type { EventStore, RecordedEvent } from '../historian/port'
import { describeError, replaceDeadLetters, type DeadLetterResolution } from './projectionDeadLetters'
import { liveTables, suffixedTables, type Projection, type ProjectionTables } from './projection'
import { readSurvivors, type LifecycleFollowing } from './lifecycleFollower'
import { applyReadEvents, readAfter, readCheckpoint, readRecorded, withClient, type ReadOutcome } from './runner'

/** The outcome of rebuilding projections from position 0 and comparing them with their live read models. */
export interface RebuildComparison {
  readonly matches: boolean
  /** One line per differing row or dead letter, naming the table, the row's key and the differing columns. */
  readonly differences: readonly string[]
  /** The checkpoint each projection was rebuilt to and compared at. */
  readonly positions: Readonly<Record<string, bigint>>
}

export interface RebuildOptions {
  /** Events read and applied per transaction while rebuilding. Default 2,000. */
  readonly batchSize?: number
  /** Differing rows reported per table at most. Default 50. */
  readonly maxDifferencesPerTable?: number
  /** Called after each rebuilt batch. */
  readonly onProgress?: (progress: RebuildProgress) => void
}

/** How far a rebuild has got. */
export interface RebuildProgress {
  readonly projection: string
  /** Events read from the log and applied (or dead-lettered) so far. */
  readonly events: number
  /** The last position built. */
  readonly position: bigint
  /** The live checkpoint the rebuild is catching up to (it may still move). */
  readonly target: bigint
}

/** What rebuildProjection did for one projection. */
export interface RebuildResult {
  readonly projection: string
  /** The checkpoint the new tables were built to and swapped in at. */
  readonly position: bigint
  /** Events read from the log and applied or dead-lettered. */
  readonly events: number
  /** Rows in each new live table, keyed by table name. */
  readonly rows: Readonly<Record<string, number>>
  /** Whether the rebuilt tables and dead letters equalled the incremental read model they replaced. */
  readonly matchedIncremental: boolean
  /** How they differed (empty when they matched); see rebuildAndCompare. */
  readonly differences: readonly string[]
  /** Positions that fail for this projection after the rebuild (its dead letters now). */
  readonly deadLetters: readonly bigint[]
  /** Dead letters of the old model that the rebuild applied (moved to projection_dead_letter_history). */
  readonly resolvedDeadLetters: readonly bigint[]
}

/** Options of rebuildProjection. */
export interface RebuildProjectionOptions extends RebuildOptions {
  /** How dead letters the rebuild applied are recorded in the history. Default 'rebuilt'; a dead-letter retry passes 'retried'. */
  readonly resolution?: DeadLetterResolution
  /** Dead letters being retried: those that fail again get their attempts counted. */
  readonly retrying?: readonly bigint[]
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
const DEFAULT_REBUILD_BATCH_SIZE = 2_000
/**
 * How many events past the fresh tables' position are read before each locking attempt, so that the events a live
 * runner committed in the meantime are at hand under the lock. At least one batch; larger than any runner's usual lead,
 * so that a busy runner does not make every attempt miss by a few events.
 */
const CATCH_UP_WINDOW = 2_000

/** An event that could not be read or applied during a rebuild. */
interface PoisonedEvent {
  readonly event: RecordedEvent
  readonly error: string
}

/** Fresh tables built from position 0 up to the live checkpoint, under that checkpoint's row lock. */
interface LockedBuild {
  readonly live: ProjectionTables
  readonly fresh: ProjectionTables
  /** The locked live checkpoint; the fresh tables hold every event up to it. */
  readonly position: bigint
  readonly events: number
  readonly poisoned: ReadonlyMap<bigint, PoisonedEvent>
}

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
  const maxDifferences = options.maxDifferencesPerTable ?? 50
  const compared = await withLockedBuilds(store, pool, projections, 'share', options, async (client, projection, build) => ({
    projection: projection.name,
    position: build.position,
    differences: await compareBuild(client, projection, build, maxDifferences),
  }))
  const differences = compared.flatMap((one) => one.differences)
  const positions: Record<string, bigint> = Object.fromEntries(compared.map((one) => [one.projection, one.position]))
  return { matches: differences.length === 0, differences, positions }
}

/**
 * Rebuilds one projection from position 0 into fresh tables and swaps them in atomically, while the live tables keep
 * serving queries. The fresh tables (`like <live> including all`: columns, defaults, constraints, indexes) are built in
 * batches up to the live checkpoint. Then ONE transaction locks the checkpoint row FOR UPDATE (a live runner waits),
 * applies the events the runner committed meanwhile, compares fresh and live (`matchedIncremental`), renames live to
 * retired and fresh to live, drops retired, gives the new tables the old index names, and replaces the projection's
 * dead letters with the rebuild's (a dead letter the rebuild applied moves to projection_dead_letter_history).
 *
 * A query that reaches a live table during the swap waits for the rename's lock and, once it gets it, reads the new
 * table: PostgreSQL looks the name up again after a lock wait that saw catalog changes (RangeVarGetRelidExtended).
 * Dropping retired inside the swap means an object that depends on a live table (a view, say) fails the swap as a
 * whole, leaving the old tables in place. Not copied: grants, triggers, foreign keys pointing at the table.
 */
export async function rebuildProjection(
  store: EventStore,
  pool: pg.Pool,
  projection: Projection,
  options: RebuildProjectionOptions = {},
): Promise<RebuildResult> {
  const [result] = await rebuildProjections(store, pool, [projection], options)
  return result!
}

/**
 * rebuildProjection for several projections at once: the log is read and parsed once for all of them, each batch is
 * applied to every projection's fresh tables side by side (one pooled client each), and then each projection is locked,
 * caught up, compared and swapped in its own transaction, one after another, exactly as rebuildProjection does.
 */
export async function rebuildProjections(
  store: EventStore,
  pool: pg.Pool,
  projections: readonly Projection[],
  options: RebuildProjectionOptions = {},
): Promise<RebuildResult[]> {
  const maxDifferences = options.maxDifferencesPerTable ?? 50
  return withLockedBuilds(store, pool, projections, 'update', options, async (client, projection, build) => {
    const differences = await compareBuild(client, projection, build, maxDifferences)
    const rows: Record<string, number> = {}
    for (const table of projection.tables) {
      const counted = await client.query<{ count: string }>(`select count(*) as count from ${build.fresh[table]!}`)
      rows[table] = Number(counted.rows[0]!.count)
    }
    for (const table of projection.tables) await swapTable(client, table, build.live[table]!, build.fresh[table]!)
    const letters = await replaceDeadLetters(client, projection.name, [...build.poisoned.values()], {
      resolution: options.resolution ?? 'rebuilt',
      retrying: options.retrying ?? [],
    })
    return {
      projection: projection.name,
      position: build.position,
      events: build.events,
      rows,
      matchedIncremental: differences.length === 0,
      differences,
      deadLetters: [...build.poisoned.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      resolvedDeadLetters: letters.resolved,
    }
  })
}

/** One projection's fresh tables while they are being built. */
interface FreshBuild {
  readonly projection: Projection
  readonly live: ProjectionTables
  readonly fresh: ProjectionTables
  /** The fresh tables created so far (dropped at the end unless renamed). */
  readonly created: string[]
  /** The live checkpoint the build is heading for. */
  target: bigint
  built: bigint
  events: number
  poisoned: Map<bigint, PoisonedEvent>
}

/**
 * Builds fresh copies of each projection's tables up to its live checkpoint (all of them from one reading of the log),
 * then, for each projection in turn, runs `finish` in a transaction holding the checkpoint row lock (`share` lets
 * nothing commit a batch; `update` also excludes other swaps and retries) with the fresh tables at exactly that
 * checkpoint. Events the live runner committed while the build ran are read beforehand (never while a pooled client is
 * held: a PGlite pool has one) and applied under the lock when they cover the step; otherwise the lock is released and
 * the build catches up again. The fresh tables are dropped unless `finish` renamed them.
 */
async function withLockedBuilds<T>(
  store: EventStore,
  pool: pg.Pool,
  projections: readonly Projection[],
  lock: 'share' | 'update',
  options: RebuildOptions,
  finish: (client: pg.PoolClient, projection: Projection, build: LockedBuild) => Promise<T>,
): Promise<T[]> {
  const batchSize = options.batchSize ?? DEFAULT_REBUILD_BATCH_SIZE
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`)
  const builds: FreshBuild[] = []
  try {
    for (const projection of projections) {
      const live = liveTables(projection)
      const fresh = suffixedTables(projection, `_rebuild_${randomBytes(4).toString('hex')}`)
      const build: FreshBuild = { projection, live, fresh, created: [], target: 0n, built: 0n, events: 0, poisoned: new Map() }
      builds.push(build)
      for (const table of projection.tables) {
        await pool.query(`create table ${fresh[table]!} (like ${live[table]!} including all)`)
        build.created.push(fresh[table]!)
      }
      await pool.query(`insert into projection_checkpoints (name, position) values ($1, 0) on conflict (name) do nothing`, [projection.name])
      build.target = await readCheckpoint(pool, projection.name)
    }
    await buildFresh(store, pool, builds, batchSize, options.onProgress)
    const results: T[] = []
    for (const build of builds) results.push(await lockAndFinish(store, pool, build, lock, batchSize, options.onProgress, finish))
    return results
  } finally {
    for (const build of builds) for (const table of build.created) await pool.query(`drop table if exists ${table}`)
  }
}

/** Locks one projection's checkpoint row, catches its fresh tables up to it and runs `finish`, retrying while the checkpoint moves. */
async function lockAndFinish<T>(
  store: EventStore,
  pool: pg.Pool,
  build: FreshBuild,
  lock: 'share' | 'update',
  batchSize: number,
  onProgress: RebuildOptions['onProgress'],
  finish: (client: pg.PoolClient, projection: Projection, build: LockedBuild) => Promise<T>,
): Promise<T> {
  const { projection } = build
  for (let attempt = 1; attempt <= MAX_CATCH_UP_ATTEMPTS; attempt++) {
    if (build.target < build.built) {
      // The live checkpoint was reset below what we built: start again from 0.
      for (const table of build.created) await pool.query(`truncate ${table}`)
      Object.assign(build, { built: 0n, events: 0, poisoned: new Map() })
    }
    await buildFresh(store, pool, [build], batchSize, onProgress)
    const ahead = (await store.readAll({ after: readAfter(build.built), maxCount: Math.max(batchSize, CATCH_UP_WINDOW) })).map(readRecorded)
    const survivors = await readSurvivors(store, ahead)

    const outcome = await withClient(pool, async (client): Promise<{ done: T } | { moved: bigint }> => {
      await client.query('begin')
      try {
        const locked = await client.query<{ position: string }>(
          `select position from projection_checkpoints where name = $1 for ${lock === 'share' ? 'share' : 'update'}`,
          [projection.name],
        )
        const current = BigInt(locked.rows[0]!.position)
        const step = ahead.filter((outcome) => outcome.recorded.position <= current)
        if (current < build.built || (current > build.built && step.at(-1)?.recorded.position !== current)) {
          await client.query('commit')
          return { moved: current }
        }
        if (step.length > 0) {
          await applyReadEvents(
            client,
            projection,
            build.fresh,
            step,
            async (event, error) => {
              build.poisoned.set(event.position, { event, error: describeError(error) })
            },
            followingFor(build, survivors),
          )
          build.built = current
          build.events += step.length
        }
        const done = await finish(client, projection, { live: build.live, fresh: build.fresh, position: current, events: build.events, poisoned: build.poisoned })
        await client.query('commit')
        return { done }
      } catch (error) {
        await client.query('rollback').catch(() => undefined)
        throw error
      }
    })
    if ('done' in outcome) return outcome.done
    build.target = outcome.moved
  }
  throw new RebuildRaceError(projection.name, MAX_CATCH_UP_ATTEMPTS)
}

/**
 * Applies every event after each build's `built` and up to its `target` to its fresh tables. The log is read once for
 * all the builds, the next page while the current one is applied, and each page is applied to every build side by side,
 * one transaction per build and page.
 */
async function buildFresh(
  store: EventStore,
  pool: pg.Pool,
  builds: readonly FreshBuild[],
  batchSize: number,
  onProgress: RebuildOptions['onProgress'],
): Promise<void> {
  const behind = builds.filter((build) => build.built < build.target)
  if (behind.length > 0) {
    const target = behind.reduce((highest, build) => (build.target > highest ? build.target : highest), 0n)
    const readPage = (after: bigint) => {
      const page = store.readAll({ after: readAfter(after), maxCount: batchSize })
      page.catch(() => undefined) // awaited below; this only keeps an early failure from counting as unhandled
      return page
    }
    let next: Promise<RecordedEvent[]> | undefined = readPage(behind.reduce((lowest, build) => (build.built < lowest ? build.built : lowest), target))
    while (next) {
      const events: RecordedEvent[] = await next
      const wanted = events.filter((event) => event.position <= target)
      next = wanted.length < events.length || events.length < batchSize ? undefined : readPage(wanted.at(-1)!.position)
      const read = wanted.map(readRecorded)
      const survivors = await readSurvivors(store, read)
      await settleAll(
        behind.map((build) =>
          applyToFresh(
            pool,
            build,
            read.filter((outcome) => outcome.recorded.position > build.built && outcome.recorded.position <= build.target),
            followingFor(build, survivors),
            onProgress,
          ),
        ),
      )
    }
  }
  // Nothing visible is left up to a target (an event hidden since the runner read it, say): that build is there.
  for (const build of builds) if (build.built < build.target) build.built = build.target
}

/** Applies one page of read events to one build's fresh tables in a transaction of its own. */
async function applyToFresh(
  pool: pg.Pool,
  build: FreshBuild,
  read: readonly ReadOutcome[],
  following: LifecycleFollowing,
  onProgress: RebuildOptions['onProgress'],
): Promise<void> {
  if (read.length === 0) return
  await withClient(pool, async (client) => {
    await client.query('begin')
    try {
      await applyReadEvents(
        client,
        build.projection,
        build.fresh,
        read,
        async (event, error) => {
          build.poisoned.set(event.position, { event, error: describeError(error) })
        },
        following,
      )
      await client.query('commit')
    } catch (error) {
      await client.query('rollback').catch(() => undefined)
      throw error
    }
  })
  build.events += read.length
  build.built = read.at(-1)!.recorded.position
  onProgress?.({ projection: build.projection.name, events: build.events, position: build.built, target: build.target })
}

/** How a build follows lifecycle decisions: its dead letters are kept in memory, so forgetting them is a map delete. */
function followingFor(build: FreshBuild, survivors: LifecycleFollowing['survivors']): LifecycleFollowing {
  return {
    survivors,
    async forgetDeadLetters(_client, _projection, stream, kept) {
      for (const [position, poison] of build.poisoned) if (poison.event.streamName === stream && !kept.has(position)) build.poisoned.delete(position)
    },
  }
}

/** Waits for every promise, then rejects with the first failure if any failed (nothing is left running behind it). */
async function settleAll(promises: readonly Promise<void>[]): Promise<void> {
  const failed = (await Promise.allSettled(promises)).find((result): result is PromiseRejectedResult => result.status === 'rejected')
  if (failed) throw failed.reason
}

/** The row and dead-letter differences between a locked build and the live model. */
async function compareBuild(client: pg.PoolClient, projection: Projection, build: LockedBuild, maxDifferences: number): Promise<string[]> {
  const poisoned = new Map([...build.poisoned].map(([position, poison]) => [position, poison.error]))
  return [
    ...(await compareTables(client, projection, build.live, build.fresh, maxDifferences)),
    ...(await compareDeadLetters(client, projection.name, poisoned, build.position)),
  ]
}

interface IndexInfo {
  name: string
  /** The index definition without its own name and its table's: what makes two tables' indexes the same. */
  shape: string
}

async function tableIndexes(client: pg.PoolClient, table: string): Promise<IndexInfo[]> {
  const result = await client.query<{ name: string; def: string }>(
    `select c.relname as name, pg_get_indexdef(i.indexrelid) as def
       from pg_index i join pg_class c on c.oid = i.indexrelid
      where i.indrelid = $1::regclass
      order by c.relname`,
    [table],
  )
  return result.rows.map((row) => ({ name: row.name, shape: row.def.replace(/^CREATE (UNIQUE )?INDEX \S+ ON (ONLY )?\S+ /, '$1') }))
}

/**
 * Inside the swap transaction: live -> retired, fresh -> live, drop retired, then rename the fresh table's indexes
 * (and so its primary key constraint) to the names the live ones had, so that names stay stable across rebuilds.
 */
async function swapTable(client: pg.PoolClient, table: string, live: string, fresh: string): Promise<void> {
  const oldIndexes = await tableIndexes(client, live)
  const retired = pg.escapeIdentifier(`${table}_retired_${randomBytes(4).toString('hex')}`)
  await client.query(`alter table ${live} rename to ${retired}`)
  await client.query(`alter table ${fresh} rename to ${pg.escapeIdentifier(table)}`)
  await client.query(`drop table ${retired}`)
  const unclaimed = [...oldIndexes]
  for (const index of await tableIndexes(client, pg.escapeIdentifier(table))) {
    const twin = unclaimed.findIndex((candidate) => candidate.shape === index.shape)
    if (twin < 0) continue
    const [{ name }] = unclaimed.splice(twin, 1) as [IndexInfo]
    if (name !== index.name) await client.query(`alter index ${pg.escapeIdentifier(index.name)} rename to ${pg.escapeIdentifier(name)}`)
  }
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
      // Rows compare by their text form (every column's output, numeric scale and all), which is four times cheaper
      // than comparing to_jsonb; only the differing rows are turned back into rows and JSON to be described.
      `select side, to_jsonb(text_row::${live[table]}) as row from (
         (select 'live' as side, only_live.text_row from (
            select l::text as text_row from ${live[table]} l except all select r::text from ${scratch[table]} r) only_live)
         union all
         (select 'rebuild' as side, only_rebuild.text_row from (
            select r::text as text_row from ${scratch[table]} r except all select l::text from ${live[table]} l) only_rebuild)
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
