import fc from 'fast-check'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian, type PendingEvent, type StoredEvent } from '../../historian/historian'
import type { RecordedEvent } from '../../historian/port'
import { taskStreamName } from '../../historian/streams'
import { defaultProjections } from '../../projections/defaultProjections'
import { describeError } from '../../projections/projectionDeadLetters'
import { suffixedTables, type Projection, type ProjectionTables } from '../../projections/projection'
import { applyEvents, readAfter, withClient } from '../../projections/runner'
import { DATABASE_BACKENDS, randomKeyRing, randomSuffix } from '../support/databases'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'

/** What one generated step appends: a valid event of some kind, or a poison event. */
type StepKind =
  | 'received'
  | 'routed'
  | 'routingFailed'
  | 'planned'
  | 'planningFailed'
  | 'toolOk'
  | 'toolFailed'
  | 'synthesized'
  | 'synthesisFailed'
  | 'completed'
  | 'failed'
  | 'unknownType'
  | 'badSchema'
  | 'applyPoison'

interface Step {
  readonly task: number
  readonly kind: StepKind
  readonly attempt: number
  readonly cost: number
  /** Whether the provider reported the model call's usage (false: the tokens and cost are an estimate). */
  readonly reported: boolean
}

const KINDS: readonly StepKind[] = [
  'received',
  'routed',
  'routingFailed',
  'planned',
  'planningFailed',
  'toolOk',
  'toolFailed',
  'synthesized',
  'synthesisFailed',
  'completed',
  'failed',
  'unknownType',
  'badSchema',
  'applyPoison',
]
// Costs whose float sums differ from their decimal sums (0.1 + 0.2), tiny ones printed in exponent form, and zero.
const COSTS = [0, 0.0011, 0.1, 0.2, 0.3, 1e-7, 12.5, 0.0034]

const stepArbitrary = fc.record({
  task: fc.integer({ min: 0, max: 3 }),
  kind: fc.constantFrom(...KINDS),
  attempt: fc.integer({ min: 1, max: 3 }),
  cost: fc.constantFrom(...COSTS),
  reported: fc.boolean(),
})

/** The valid event a step stands for (undefined for the unreadable poison kinds, which are inserted raw). */
function pendingEvent(f: TaskEventFactory, step: Step): PendingEvent | undefined {
  const usage = { inputTokens: 100 * step.attempt, outputTokens: 7, costUsd: step.cost }
  // A failed call's usage: billed (a malformed reply) or unreported (a timeout), both priced, so both sums are exercised.
  const failedUsage = step.reported ? { ...usage, reported: true } : { ...usage, outputTokens: 0, reported: false }
  switch (step.kind) {
    case 'received':
      return f.received()
    case 'routed':
      return f.routingInvoked(step.attempt === 1 ? 'research' : 'support', usage)
    case 'routingFailed':
      return f.routingFailed(step.attempt < 3, step.attempt, failedUsage)
    case 'planned':
      return f.planCreated(['search'], usage)
    case 'planningFailed':
      return f.planningFailed(step.attempt < 3, step.attempt, failedUsage)
    case 'toolOk':
      return f.toolExecuted(`call-${step.attempt}`, 'search')
    case 'toolFailed':
      return f.toolFailed(`call-${step.attempt}`, 'fetch')
    case 'synthesized':
      return f.synthesisInvoked('answer', usage)
    case 'synthesisFailed':
      return f.synthesisFailed(step.attempt < 3, step.attempt, failedUsage)
    case 'completed':
      return f.completed({ totalTokens: 10, totalCostUsd: step.cost, toolCallsSucceeded: 1, toolCallsFailed: 0 })
    case 'failed':
      return f.failed(step.attempt === 1 ? 'synthesize' : 'tools', 'BOOM')
    case 'applyPoison':
      return f.toolExecuted(`call-${step.attempt}`, POISON_TOOL)
    case 'unknownType':
    case 'badSchema':
      return undefined
  }
}

/** Events naming this tool read fine but make every projection throw after writing: a poison event at apply time. */
const POISON_TOOL = 'poison-tool'
const poisonous = (stored: StoredEvent) => stored.event.type === 'ToolCallExecuted' && stored.event.data.toolName === POISON_TOOL
const indigestion = (stored: StoredEvent) => new Error(`cannot digest the event at position ${stored.position}`)

/** The projection, except that it throws on a poisonous event after writing its rows (which must then be rolled back). */
function withPoison(projection: Projection): Projection {
  const { applyBatch } = projection
  return {
    ...projection,
    async apply(client, stored, tables) {
      await projection.apply(client, stored, tables)
      if (poisonous(stored)) throw indigestion(stored)
    },
    applyBatch:
      applyBatch &&
      (async (client, events, tables) => {
        await applyBatch(client, events, tables)
        const bad = events.find(poisonous)
        if (bad) throw indigestion(bad)
      }),
  }
}

/** Appends the steps in order: valid events through the Historian, unreadable ones as raw rows. */
async function appendSteps(historian: Historian, pool: pg.Pool, tenant: string, steps: readonly Step[]): Promise<void> {
  const factories = new Map<number, TaskEventFactory>()
  for (const step of steps) {
    const taskId = `task-${step.task}`
    const f = factories.get(step.task) ?? new TaskEventFactory(tenant, taskId)
    factories.set(step.task, f)
    const pending = pendingEvent(f, step)
    if (pending) {
      await appendTaskEvents(historian, tenant, taskId, [pending])
      continue
    }
    const stream = taskStreamName(tenant, taskId)
    await pool.query(
      `insert into events (stream_name, stream_revision, event_id, event_type, data, metadata)
       values ($1, (select coalesce(max(stream_revision) + 1, 0) from events where stream_name = $1), gen_random_uuid(), $2, $3, $4)`,
      [
        stream,
        step.kind === 'unknownType' ? 'MysteryHappened' : 'ToolCallExecuted',
        JSON.stringify(step.kind === 'unknownType' ? { anything: true } : { toolName: '' }),
        JSON.stringify({ schemaVersion: 1, tenantId: tenant, taskId }),
      ],
    )
  }
}

/** Applies the events chunk by chunk (sizes cycling through `sizes`), one transaction per chunk; returns the dead letters. */
async function applyInChunks(pool: pg.Pool, projection: Projection, tables: ProjectionTables, events: readonly RecordedEvent[], sizes: readonly number[]): Promise<string[]> {
  const letters: string[] = []
  for (let start = 0, chunk = 0; start < events.length; chunk++) {
    const end = start + sizes[chunk % sizes.length]!
    await withClient(pool, async (client) => {
      await client.query('begin')
      await applyEvents(client, projection, tables, events.slice(start, end), async (event, error) => {
        letters.push(`${event.position} ${describeError(error)}`)
      })
      await client.query('commit')
    })
    start = end
  }
  return letters
}

/** Rows of one table missing from the other, both ways, compared by their full text form. */
async function rowDifferences(pool: pg.Pool, a: string, b: string): Promise<string[]> {
  const result = await pool.query<{ row: string }>(
    `(select x::text as row from ${a} x except all select y::text from ${b} y)
     union all
     (select y::text from ${b} y except all select x::text from ${a} x)`,
  )
  return result.rows.map((row) => row.row)
}

async function rowCount(pool: pg.Pool, table: string): Promise<number> {
  return Number((await pool.query<{ count: string }>(`select count(*) as count from ${table}`)).rows[0]!.count)
}

describe.each(DATABASE_BACKENDS)('applyBatch equals applying one event at a time, on $backend', ({ open }) => {
  let database: Database
  let store: PostgresEventStore
  let historian: Historian
  beforeAll(async () => {
    database = await open()
    store = new PostgresEventStore(database)
    historian = new Historian(store, { keyRing: randomKeyRing() })
  })
  afterAll(async () => {
    await store.close()
    await database.close()
  })

  it('gives the same rows and dead letters for random logs with poison events, in random batch sizes, and again on a replay', async () => {
    const projections = defaultProjections().map(withPoison)
    let checkedRows = 0
    let checkedLetters = 0
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArbitrary, { minLength: 1, maxLength: 40, size: 'max' }),
        fc.array(fc.integer({ min: 2, max: 15 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 3 }),
        async (steps, sizes, replaySizes) => {
          const head = await database.pool.query<{ position: string }>('select coalesce(max(position), 0) as position from events')
          const after = BigInt(head.rows[0]!.position)
          await appendSteps(historian, database.pool, `batch${randomSuffix(3)}`, steps)
          const events = await store.readAll({ after: readAfter(after), maxCount: 10_000 })
          expect(events).toHaveLength(steps.length)

          for (const projection of projections) {
            const one = suffixedTables(projection, `_one_${randomSuffix(3)}`)
            const many = suffixedTables(projection, `_many_${randomSuffix(3)}`)
            for (const table of projection.tables) {
              await database.pool.query(`create table ${one[table]!} (like ${pg.escapeIdentifier(table)} including all)`)
              await database.pool.query(`create table ${many[table]!} (like ${pg.escapeIdentifier(table)} including all)`)
            }
            try {
              const oneByOne = await applyInChunks(database.pool, projection, one, events, [1])
              const batched = await applyInChunks(database.pool, projection, many, events, sizes)
              expect(batched).toEqual(oneByOne)
              for (const table of projection.tables) expect(await rowDifferences(database.pool, one[table]!, many[table]!)).toEqual([])

              // Applying everything again, in other batch sizes, changes no row (and fails on the same events).
              expect(await applyInChunks(database.pool, projection, many, events, replaySizes)).toEqual(oneByOne)
              for (const table of projection.tables) {
                expect(await rowDifferences(database.pool, one[table]!, many[table]!)).toEqual([])
                checkedRows += await rowCount(database.pool, one[table]!)
              }
              checkedLetters += oneByOne.length
            } finally {
              for (const table of projection.tables) {
                await database.pool.query(`drop table if exists ${one[table]!}`)
                await database.pool.query(`drop table if exists ${many[table]!}`)
              }
            }
          }
        },
      ),
      { numRuns: 20 },
    )
    // The property compared real rows and real dead letters, not empty tables.
    expect(checkedRows).toBeGreaterThan(100)
    expect(checkedLetters).toBeGreaterThan(0)
  }, 240_000)
})
