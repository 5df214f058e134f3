import type { Database } from '../historian/adapters/postgres/database'
import type { EventStore, ExpectedRevision, NewEvent } from '../historian/port'
import { benchEvent } from './benchEvents'
import { interleaveRounds, median, timeMs } from './interleavedRounds'

export interface AppendVsRawInsertResult {
  /** Event-store appends per second divided by plain INSERTs per second (events per second, medians of rounds). */
  readonly ratio: number
  readonly eventsPerSecAppend: number
  readonly eventsPerSecRawInsert: number
  /**
   * Where the gap comes from: the same rows INSERTed straight into the `events` table (its keys, indexes and generated
   * columns, but no append function: no lock, no revision check, no notification), against the plain table...
   */
  readonly eventsTableInsertVsRawInsertRatio: number
  /** ...and the append against that insert: what the append function itself costs. */
  readonly appendVsEventsTableInsertRatio: number
  readonly eventsPerSecEventsTableInsert: number
  /** Events per second of each round, in run order. */
  readonly roundsAppend: readonly number[]
  readonly roundsRawInsert: readonly number[]
  readonly roundsEventsTableInsert: readonly number[]
  readonly batchSize: number
  readonly batchesPerRound: number
  readonly rounds: number
  /** Bytes of JSON per event: data plus metadata. */
  readonly payloadBytes: number
}

/** The baseline: the same payloads in a table with no key, no index, no constraint and no trigger. */
const RAW_TABLE = 'bench_raw_events'

/** How many appends a stream takes before the writer moves on to a new one (a pipeline task records about ten events). */
const APPENDS_PER_STREAM = 10

const VARIANTS = ['append', 'rawInsert', 'eventsTableInsert'] as const
type Variant = (typeof VARIANTS)[number]

/**
 * Measures a single writer's events per second through `store.appendToStream` (explicit expected revisions: the
 * stream's first append expects `no_stream`, later ones its exact revision) against plain INSERTs of the same payloads
 * into an unindexed table on the same database, in interleaved rounds. A batch is one append of `batchSize` events
 * against one INSERT statement of `batchSize` rows, each committed on its own. A third variant INSERTs the same rows
 * straight into the `events` table, to tell the table's own cost from the append function's.
 */
export async function measureAppendVsRawInsert(options: {
  database: Database
  store: EventStore
  batchSize: number
  batchesPerRound: number
  rounds: number
  onRound?: (variant: Variant, round: number, eventsPerSec: number) => void
}): Promise<AppendVsRawInsertResult> {
  const { database, store, batchSize, batchesPerRound } = options
  await database.pool.query(`create table if not exists ${RAW_TABLE} (stream text not null, data jsonb not null, metadata jsonb not null)`)
  const rawSql = rawInsertSql(batchSize)
  const eventsTableSql = eventsTableInsertSql(batchSize)
  const runTag = Date.now().toString(36)
  const written: Record<Variant, number> = { append: 0, rawInsert: 0, eventsTableInsert: 0 }

  const runRound = async (variant: Variant, roundTag: string, batches: number): Promise<number> => {
    // Payloads are made before the clock starts; serializing them is part of each variant's own work.
    const work = Array.from({ length: batches }, (_, i) => {
      const streamIndex = Math.floor(i / APPENDS_PER_STREAM)
      const appendIndex = i % APPENDS_PER_STREAM
      const taskId = `${runTag}${roundTag}-${variant}-${streamIndex}`
      const events = Array.from({ length: batchSize }, (_, n) => benchEvent('bench_append', taskId, appendIndex * batchSize + n))
      const expectedRevision: ExpectedRevision = appendIndex === 0 ? 'no_stream' : BigInt(appendIndex * batchSize - 1)
      return { stream: `tenant_bench_append-${taskId}`, events, expectedRevision, firstRevision: appendIndex * batchSize }
    })
    const ms = await timeMs(async () => {
      for (const { stream, events, expectedRevision, firstRevision } of work) {
        if (variant === 'append') await store.appendToStream(stream, events, { expectedRevision })
        else if (variant === 'rawInsert') await database.pool.query(rawSql, rawInsertValues(stream, events))
        else await database.pool.query(eventsTableSql, eventsTableInsertValues(stream, firstRevision, events))
      }
    })
    written[variant] += batches * batchSize
    return (batches * batchSize * 1_000) / ms
  }

  // One untimed warm-up round each: JIT, plan caches, the first pages of each table and index.
  for (const variant of VARIANTS) await runRound(variant, 'warm', Math.max(1, Math.ceil(batchesPerRound / 5)))
  const rounds = await interleaveRounds(VARIANTS, options.rounds, async (variant, round) => {
    const perSec = await runRound(variant, `r${round}`, batchesPerRound)
    options.onRound?.(variant, round, perSec)
    return perSec
  })
  await assertEverythingStored(database, runTag, written)

  const eventsPerSecAppend = median(rounds.append)
  const eventsPerSecRawInsert = median(rounds.rawInsert)
  const eventsPerSecEventsTableInsert = median(rounds.eventsTableInsert)
  const sample = benchEvent('bench_append', 'sample', 0)
  return {
    ratio: eventsPerSecAppend / eventsPerSecRawInsert,
    eventsPerSecAppend,
    eventsPerSecRawInsert,
    eventsTableInsertVsRawInsertRatio: eventsPerSecEventsTableInsert / eventsPerSecRawInsert,
    appendVsEventsTableInsertRatio: eventsPerSecAppend / eventsPerSecEventsTableInsert,
    eventsPerSecEventsTableInsert,
    roundsAppend: rounds.append,
    roundsRawInsert: rounds.rawInsert,
    roundsEventsTableInsert: rounds.eventsTableInsert,
    batchSize,
    batchesPerRound,
    rounds: options.rounds,
    payloadBytes: JSON.stringify(sample.data).length + JSON.stringify(sample.metadata).length,
  }
}

/** `rows` placeholders tuples of `casts.length` parameters each: `($1, $2::jsonb), ($3, $4::jsonb)`. */
function valuesList(rows: number, casts: readonly string[]): string {
  const width = casts.length
  return Array.from({ length: rows }, (_, row) => `(${casts.map((cast, column) => `$${row * width + column + 1}${cast}`).join(', ')})`).join(', ')
}

/** One multi-row INSERT into the unindexed table. */
function rawInsertSql(rows: number): string {
  return `insert into ${RAW_TABLE} (stream, data, metadata) values ${valuesList(rows, ['', '::jsonb', '::jsonb'])}`
}

function rawInsertValues(stream: string, events: readonly NewEvent[]): string[] {
  return events.flatMap((event) => [stream, JSON.stringify(event.data), JSON.stringify(event.metadata)])
}

/** One multi-row INSERT of the same rows into `events`, bypassing `annalist_append`. */
function eventsTableInsertSql(rows: number): string {
  const casts = ['', '::bigint', '::uuid', '', '::integer', '::jsonb', '::jsonb']
  return `insert into events (stream_name, stream_revision, event_id, event_type, schema_version, data, metadata) values ${valuesList(rows, casts)}`
}

function eventsTableInsertValues(stream: string, firstRevision: number, events: readonly NewEvent[]): (string | number)[] {
  return events.flatMap((event, i) => [stream, firstRevision + i, event.eventId, event.type, 1, JSON.stringify(event.data), JSON.stringify(event.metadata)])
}

/** A benchmark that silently wrote nothing would report a fine ratio: count what both variants stored. */
async function assertEverythingStored(database: Database, runTag: string, written: Record<Variant, number>): Promise<void> {
  const pattern = `tenant_bench_append-${runTag}%`
  const { rows } = await database.pool.query<Record<Variant, number>>(
    `select (select count(*)::int from events where stream_name like $1 and stream_name like '%-append-%') as "append",
            (select count(*)::int from ${RAW_TABLE} where stream like $1 and stream like '%-rawInsert-%') as "rawInsert",
            (select count(*)::int from events where stream_name like $1 and stream_name like '%-eventsTableInsert-%') as "eventsTableInsert"`,
    [pattern],
  )
  const counted = rows[0]
  if (!counted || VARIANTS.some((variant) => counted[variant] !== written[variant])) {
    throw new Error(`append benchmark: expected ${JSON.stringify(written)} events stored, found ${JSON.stringify(counted)}`)
  }
}
