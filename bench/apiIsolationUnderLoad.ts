import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createApiKey } from '../api/keys'
import { buildApiServer } from '../api/server'
import type { Database } from '../historian/adapters/postgres/database'
import { PostgresEventStore } from '../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../historian/integrity/tenantKeyRing'
import { defaultProjections } from '../projections/defaultProjections'
import { ProjectionRunner } from '../projections/runner'
import { appendTaskEvents, TaskEventFactory } from '../dev/fixtures/eventFactory'
import { taskRunEvents } from '../dev/fixtures/taskRuns'
import { interleaveRounds, median, timeMs } from './interleavedRounds'

/** The tenant whose exports load the server, and the tenant whose audit trail is queried meanwhile. */
export const EXPORTED_TENANT = 'bulk'
export const QUERIED_TENANT = 'other'

/** About 8 KB of task input: the exported tenant's tasks carry it, so an export runs to megabytes with few events. */
const LARGE_INPUT = 'Summarise the attached incident reports and list every follow-up with its owner. '.repeat(100)

/**
 * Records `tasks` tasks of the exported tenant through the Historian (hash-chained, as the pipeline writes them): each
 * a received event with about 8 KB of input, a routing and a synthesis outcome, about 10 KB in all; and a few whole
 * pipeline runs of the queried tenant. Then the projections catch up, so the audit trail holds both tenants.
 */
export async function seedExportLoad(deps: { database: Database; store: PostgresEventStore; keyRing: TenantKeyRing; tasks: number }): Promise<void> {
  const historian = new Historian(deps.store, { keyRing: deps.keyRing })
  for (let task = 0; task < deps.tasks; task++) {
    const f = new TaskEventFactory(EXPORTED_TENANT, `task-${task}`)
    await appendTaskEvents(historian, EXPORTED_TENANT, `task-${task}`, [f.received(`${LARGE_INPUT}${task}`), f.routingInvoked(), f.synthesisInvoked()])
  }
  for (let task = 0; task < 5; task++) await appendTaskEvents(historian, QUERIED_TENANT, `task-${task}`, taskRunEvents(QUERIED_TENANT, `task-${task}`))
  await new ProjectionRunner({ store: deps.store, pool: deps.database.pool, projections: defaultProjections() }).catchUp()
}

/** A GET sent to the listening server with a bearer key; resolves with the response, unread. */
export function httpGet(baseUrl: string, path: string, key: string): Promise<{ request: http.ClientRequest; response: http.IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${key}` } }, (response) => resolve({ request, response }))
    request.on('error', reject)
  })
}

/** A GET read to its end: status and body. */
export async function httpGetText(baseUrl: string, path: string, key: string): Promise<{ status: number; body: string }> {
  const { response } = await httpGet(baseUrl, path, key)
  let body = ''
  response.setEncoding('utf8')
  for await (const chunk of response) body += chunk as string
  return { status: response.statusCode ?? 0, body }
}

/** The queried tenant's audit page, as its own tenant key reads it. */
export const auditPath = (tenantId: string) => `/v2/tenants/${tenantId}/audit?limit=100`

export interface ApiIsolationUnderLoadResult {
  /** Median latency of the other tenant's audit query while three exports stream, divided by the same alone. Goal <= 3. */
  readonly ratio: number
  readonly msPerQueryAlone: number
  readonly msPerQueryUnderExports: number
  /** Median milliseconds per query of each round, in run order. */
  readonly roundsAlone: readonly number[]
  readonly roundsUnderExports: readonly number[]
  readonly concurrentExports: number
  readonly exportBytes: number
  /** How long the first export took over HTTP with nothing else running (paced: docs/audit.md). */
  readonly exportMsAlone: number
  readonly exportedEvents: number
  readonly queriesPerRound: number
  readonly rounds: number
  /** Where the server's database lived: a PostgreSQL server or PGlite. */
  readonly store: Database['kind']
}

const VARIANTS = ['alone', 'underExports'] as const

/**
 * Three exports kept streaming, each read as fast as the client can and started again when it ends, until stopped:
 * the load of the `underExports` variant. Returns how to stop them (destroying the requests mid-response).
 */
function keepExporting(baseUrl: string, keys: readonly string[]): { stop(): Promise<void> } {
  let stopped = false
  const open = new Set<http.ClientRequest>()
  const lanes = keys.map(async (key) => {
    while (!stopped) {
      const { request, response } = await httpGet(baseUrl, `/v2/tenants/${EXPORTED_TENANT}/export`, key)
      open.add(request)
      await new Promise<void>((resolve) => {
        response.on('end', resolve).on('error', () => resolve()).on('close', resolve)
        response.resume()
      })
      open.delete(request)
    }
  })
  return {
    async stop() {
      stopped = true
      for (const request of open) request.destroy()
      await Promise.allSettled(lanes)
    },
  }
}

/**
 * Measures how much three streaming exports of one tenant slow another tenant's audit query, on a real listening API
 * server over one database: `queriesPerRound` audit queries one after another, alone and while three exports stream,
 * interleaved in `rounds`; each round's figure is its median query latency.
 */
export async function measureApiIsolationUnderLoad(options: {
  database: Database
  exportedTasks: number
  queriesPerRound: number
  rounds: number
  onProgress?: (line: string) => void
  onRound?: (variant: (typeof VARIANTS)[number], round: number, ms: number) => void
}): Promise<ApiIsolationUnderLoadResult> {
  const { database, queriesPerRound } = options
  const store = new PostgresEventStore(database)
  const keyRing = TenantKeyRing.fromText(generateIntegrityKey())
  options.onProgress?.(`seeding ${options.exportedTasks} tasks of tenant ${EXPORTED_TENANT} on ${database.kind}`)
  await seedExportLoad({ database, store, keyRing, tasks: options.exportedTasks })
  // Three exporting keys of one tenant (one export in flight each) and a tenant key of another tenant for the query.
  const exporters = await Promise.all([1, 2, 3].map(() => createApiKey(database.pool, { role: 'tenant', tenantId: EXPORTED_TENANT })))
  const reader = await createApiKey(database.pool, { role: 'tenant', tenantId: QUERIED_TENANT })
  // The rate limits are lifted: this measures what the exports cost the query, not what the limits refuse.
  const app = buildApiServer({ pool: database.pool, store, keyRing, limits: { requestsPerKeyPerMinute: 1_000_000, expensivePerTenantPerMinute: 1_000_000 } })
  try {
    await app.listen({ port: 0, host: '127.0.0.1' })
    const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
    let whole = { status: 0, body: '' }
    const exportMsAlone = await timeMs(async () => (whole = await httpGetText(baseUrl, `/v2/tenants/${EXPORTED_TENANT}/export`, exporters[0]!.key)))
    if (whole.status !== 200) throw new Error(`api isolation benchmark: the export answered ${whole.status}`)
    const exportedEvents = whole.body.split('\n').length - 3
    options.onProgress?.(`one export alone: ${exportedEvents} events, ${(Buffer.byteLength(whole.body) / 1e6).toFixed(1)} MB in ${exportMsAlone.toFixed(0)} ms`)
    const query = async () => {
      const answer = await httpGetText(baseUrl, auditPath(QUERIED_TENANT), reader.key)
      if (answer.status !== 200) throw new Error(`api isolation benchmark: the audit query answered ${answer.status}`)
    }
    // Untimed warm-up: plan cache, JIT.
    for (let i = 0; i < queriesPerRound; i++) await query()

    const rounds = await interleaveRounds(VARIANTS, options.rounds, async (variant, round) => {
      const load = variant === 'underExports' ? keepExporting(baseUrl, exporters.map((exporter) => exporter.key)) : undefined
      try {
        const latencies: number[] = []
        for (let i = 0; i < queriesPerRound; i++) latencies.push(await timeMs(query))
        const ms = median(latencies)
        options.onRound?.(variant, round, ms)
        return ms
      } finally {
        await load?.stop()
      }
    })
    const msPerQueryAlone = median(rounds.alone)
    const msPerQueryUnderExports = median(rounds.underExports)
    return {
      ratio: msPerQueryUnderExports / msPerQueryAlone,
      msPerQueryAlone,
      msPerQueryUnderExports,
      roundsAlone: rounds.alone,
      roundsUnderExports: rounds.underExports,
      concurrentExports: 3,
      exportBytes: Buffer.byteLength(whole.body),
      exportMsAlone,
      exportedEvents,
      queriesPerRound,
      rounds: options.rounds,
      store: database.kind,
    }
  } finally {
    await app.close()
    await store.close()
  }
}
