import type { Database } from '../historian/adapters/postgres/database'
import { PostgresEventStore } from '../historian/adapters/postgres/postgresEventStore'
import type { ExpectedRevision } from '../historian/port'
import { benchEvent } from './benchEvents'
import { interleaveRounds, median, timeMs } from './interleavedRounds'
import { explainTenantLogRead, type TenantReadPlan } from './tenantReadPlan'

export interface TenantReadIsolationResult {
  /** Milliseconds per read of the measured tenant's log when the store holds only it, divided by when it holds `tenants`. */
  readonly ratio: number
  readonly msPerReadOneTenant: number
  readonly msPerReadManyTenants: number
  /** Milliseconds per read of each round, in run order. */
  readonly roundsOneTenant: readonly number[]
  readonly roundsManyTenants: readonly number[]
  readonly tenants: number
  readonly eventsPerTenant: number
  readonly readsPerRound: number
  readonly rounds: number
  /** Where both databases lived: a PostgreSQL server or PGlite. */
  readonly store: Database['kind']
  readonly plan: { readonly oneTenant: TenantReadPlan; readonly manyTenants: TenantReadPlan }
}

/** The tenant whose log is read. */
const MEASURED_TENANT = 'measured'
/** Events per task stream; a tenant's log spans `eventsPerTenant / EVENTS_PER_TASK` tasks. */
const EVENTS_PER_TASK = 10

const VARIANTS = ['oneTenant', 'manyTenants'] as const
type Variant = (typeof VARIANTS)[number]

/**
 * Measures `readTenantLog` of one tenant in two fresh databases: one holding only that tenant's log, one holding
 * `tenants` tenants with logs of the same size. Both are filled once, one event per tenant at a time, so in the big
 * store the measured tenant's events lie scattered among everyone else's as they would after tenants ran side by
 * side; then the reads of the two are interleaved in rounds.
 */
export async function measureTenantReadIsolation(options: {
  openDatabase: (label: string) => Promise<Database>
  tenants: number
  eventsPerTenant: number
  readsPerRound: number
  rounds: number
  onProgress?: (line: string) => void
  onRound?: (variant: Variant, round: number, msPerRead: number) => void
}): Promise<TenantReadIsolationResult> {
  const { tenants, eventsPerTenant, readsPerRound } = options
  if (!Number.isSafeInteger(tenants) || tenants < 2) throw new RangeError(`tenants must be a whole number >= 2, got ${String(tenants)}`)
  const opened: Database[] = []
  try {
    const open = async (label: string) => {
      const database = await options.openDatabase(label)
      opened.push(database)
      return { database, store: new PostgresEventStore(database) }
    }
    const stores: Record<Variant, { database: Database; store: PostgresEventStore }> = {
      oneTenant: await open('tenants1'),
      manyTenants: await open(`tenants${tenants}`),
    }
    const others = Array.from({ length: tenants - 1 }, (_, i) => `other${i + 1}`)
    await fill(stores.oneTenant.database, stores.oneTenant.store, [], eventsPerTenant)
    await fill(stores.manyTenants.database, stores.manyTenants.store, others, eventsPerTenant, options.onProgress)

    for (const variant of VARIANTS) {
      const { database, store } = stores[variant]
      await database.pool.query('vacuum analyze events')
      const log = await store.readTenantLog(MEASURED_TENANT)
      if (log.length !== eventsPerTenant) throw new Error(`tenant read benchmark: ${variant} store holds ${log.length} events of the measured tenant, not ${eventsPerTenant}`)
      // Untimed warm-up: plan cache, JIT, the pages of table and index.
      for (let i = 0; i < readsPerRound; i++) await store.readTenantLog(MEASURED_TENANT)
    }

    const rounds = await interleaveRounds(VARIANTS, options.rounds, async (variant, round) => {
      const { store } = stores[variant]
      const ms = await timeMs(async () => {
        for (let i = 0; i < readsPerRound; i++) await store.readTenantLog(MEASURED_TENANT)
      })
      options.onRound?.(variant, round, ms / readsPerRound)
      return ms / readsPerRound
    })
    const msPerReadOneTenant = median(rounds.oneTenant)
    const msPerReadManyTenants = median(rounds.manyTenants)
    return {
      ratio: msPerReadOneTenant / msPerReadManyTenants,
      msPerReadOneTenant,
      msPerReadManyTenants,
      roundsOneTenant: rounds.oneTenant,
      roundsManyTenants: rounds.manyTenants,
      tenants,
      eventsPerTenant,
      readsPerRound,
      rounds: options.rounds,
      store: stores.manyTenants.database.kind,
      plan: {
        oneTenant: await explainTenantLogRead(stores.oneTenant.database, MEASURED_TENANT),
        manyTenants: await explainTenantLogRead(stores.manyTenants.database, MEASURED_TENANT),
      },
    }
  } finally {
    for (const database of opened) await database.close()
  }
}

/**
 * Appends `eventsPerTenant` events for the measured tenant and for each of `others`, one event per tenant per wave,
 * through the store's own append path. Each wave of the other tenants' appends is one transaction (a bench fill, not
 * a measurement); the measured tenant appends on its own, as a pipeline step would.
 */
async function fill(database: Database, store: PostgresEventStore, others: readonly string[], eventsPerTenant: number, onProgress?: (line: string) => void): Promise<void> {
  for (let sequence = 0; sequence < eventsPerTenant; sequence++) {
    const task = `task${Math.floor(sequence / EVENTS_PER_TASK)}`
    const revision = sequence % EVENTS_PER_TASK
    const expectedRevision: ExpectedRevision = revision === 0 ? 'no_stream' : BigInt(revision - 1)
    await store.appendToStream(`tenant_${MEASURED_TENANT}-${task}`, [benchEvent(MEASURED_TENANT, task, sequence)], { expectedRevision })
    if (others.length === 0) continue
    const client = await database.pool.connect()
    try {
      await client.query('begin')
      for (const tenant of others) {
        const outcome = await store.appendInTransaction(client, `tenant_${tenant}-${task}`, [benchEvent(tenant, task, sequence)], expectedRevision)
        if (outcome.status !== 'written') throw new Error(`tenant read benchmark: filling ${tenant} ${task} was rejected`)
      }
      await client.query('commit')
    } catch (error) {
      await client.query('rollback').catch(() => undefined)
      throw error
    } finally {
      client.release()
    }
    if ((sequence + 1) % 10 === 0) onProgress?.(`filled ${(sequence + 1) * (others.length + 1)} of ${eventsPerTenant * (others.length + 1)} events`)
  }
}
