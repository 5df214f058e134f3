import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import pg from 'pg'
import { recentApiAccesses, type ApiAccessEntry } from '../../api/accessLog'
import { createApiKey } from '../../api/keys'
import { buildApiServer } from '../../api/server'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import { API_SEED, seedApiTenants } from '../support/apiSeed'
import { randomKeyRing } from '../support/databases'

/**
 * The path of a tenant route, the one place the suite spells it: `tenantPath('acme', 'audit')` is
 * `/v2/tenants/acme/audit`. Segments go into the URL as given, so a probe can percent-encode them as it likes.
 */
export function tenantPath(tenantSegment: string, ...rest: string[]): string {
  return ['/v2/tenants', tenantSegment, ...rest].join('/')
}

/** The access log, which every non-public request appends to; every other table must stay as it was. */
export const ACCESS_LOG = 'api_access_log'

/** Row counts of every table in the public schema, found in the catalog (a table added later is covered too). */
export async function tableRowCounts(pool: pg.Pool): Promise<Record<string, number>> {
  const { rows: tables } = await pool.query<{ name: string }>(
    `select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`,
  )
  const counts: Record<string, number> = {}
  for (const { name } of tables) {
    const { rows } = await pool.query<{ n: string }>(`select count(*)::text as n from ${pg.escapeIdentifier(name)}`)
    counts[name] = Number(rows[0]!.n)
  }
  return counts
}

/** Every row of every public table as JSON text, to search for a value that must be stored nowhere. */
export async function everyRowAsJson(pool: pg.Pool): Promise<string[]> {
  const { rows: tables } = await pool.query<{ name: string }>(`select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`)
  const all: string[] = []
  for (const { name } of tables) {
    const { rows } = await pool.query<{ row: string }>(`select row_to_json(t)::text as row from ${pg.escapeIdentifier(name)} t`)
    all.push(...rows.map((row) => row.row))
  }
  return all
}

/** What one probe did: the answer, the access-log rows it added, and every other table whose row count changed. */
export interface ProbeResult {
  readonly response: LightMyRequestResponse
  readonly logged: readonly ApiAccessEntry[]
  /** `{ table: [before, after] }` for each table other than the access log whose row count changed; `{}` when none. */
  readonly changedTables: Record<string, [number, number]>
}

/** The API on a seeded database: tenants acme and globex (test/support/apiSeed.ts) and a tenant key for each. */
export interface ProbeTarget {
  readonly app: FastifyInstance
  readonly database: Database
  readonly keys: { readonly acme: { id: string; key: string }; readonly globex: { id: string; key: string } }
  /** Sends one request with `app.inject` and reports what it wrote. */
  probe(request: { url: string; key?: string; headers?: Record<string, string> }): Promise<ProbeResult>
  close(): Promise<void>
}

/** Seeds `database`, creates the two tenant keys and builds the API on it, ready for probes. */
export async function probeTarget(database: Database): Promise<ProbeTarget> {
  const store = new PostgresEventStore(database)
  const keyRing = randomKeyRing()
  await seedApiTenants({ historian: new Historian(store, { keyRing }), store, pool: database.pool })
  const keys = {
    acme: await createApiKey(database.pool, { role: 'tenant', tenantId: 'acme', label: 'acme compliance' }),
    globex: await createApiKey(database.pool, { role: 'tenant', tenantId: 'globex', label: 'globex compliance' }),
  }
  const unexpected: unknown[] = []
  const app = buildApiServer({ pool: database.pool, store, keyRing, now: () => new Date(`${API_SEED.day}T12:00:00Z`), onError: (error) => unexpected.push(error) })
  await app.ready()
  return {
    app,
    database,
    keys,
    async probe({ url, key, headers = {} }) {
      const before = await tableRowCounts(database.pool)
      const [last] = await recentApiAccesses(database.pool, { limit: 1 })
      const response = await app.inject({ method: 'GET', url, headers: { ...(key === undefined ? {} : { authorization: `Bearer ${key}` }), ...headers } })
      const after = await tableRowCounts(database.pool)
      const logged = (await recentApiAccesses(database.pool, { limit: 100 })).filter((entry) => entry.id > (last?.id ?? 0n))
      const changedTables = Object.fromEntries(
        [...new Set([...Object.keys(before), ...Object.keys(after)])]
          .filter((table) => table !== ACCESS_LOG && before[table] !== after[table])
          .map((table) => [table, [before[table] ?? 0, after[table] ?? 0] as [number, number]]),
      )
      if (unexpected.length > 0) throw new Error(`the server reported an unexpected error: ${String(unexpected.splice(0)[0])}`)
      return { response, logged, changedTables }
    },
    async close() {
      await app.close()
      await store.close()
      await database.close()
    },
  }
}
