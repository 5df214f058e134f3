import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { recentApiAccesses, type ApiAccessEntry } from '../../api/accessLog'
import { CREDENTIAL_IN_QUERY, FORBIDDEN, UNAUTHORIZED } from '../../api/accessControl'
import { createApiKey, hashApiKey, revokeApiKey } from '../../api/keys'
import { buildApiServer } from '../../api/server'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import type { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { verifyExport } from '../../projections/export/tenantExport'
import { API_SEED, seedApiTenants } from '../support/apiSeed'
import { DATABASE_BACKENDS, randomKeyRing } from '../support/databases'

/**
 * The real pool, with every query's SQL shown to `inspect` first: to record which statements a request reached, or to
 * fail the ones that match (when `inspect` returns an error) as a broken disk would.
 */
function inspectedPool(pool: pg.Pool, inspect: (sql: string) => Error | undefined): pg.Pool {
  return new Proxy(pool, {
    get(target, property) {
      if (property === 'query') {
        return (...args: unknown[]) => {
          const first = args[0] as string | { text?: string }
          const failure = inspect(typeof first === 'string' ? first : (first.text ?? ''))
          return failure ? Promise.reject(failure) : (target.query as (...a: unknown[]) => unknown)(...args)
        }
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    },
  })
}

/** A pool that records the SQL of every query it runs: proves which statements a request did (and did not) reach. */
function recordingPool(pool: pg.Pool): { pool: pg.Pool; statements: string[] } {
  const statements: string[] = []
  return { pool: inspectedPool(pool, (sql) => void statements.push(sql)), statements }
}

/** The access log's statements: a row of its own, or (without a valid key) the refusal count that may add one. */
const isAccessLogWrite = (sql: string) => /^\s*insert into api_access_log/.test(sql) || /^\s*with counted as \(\s*insert into api_access_refusals/.test(sql)

const onlyKeyLookupAndLog = (statements: readonly string[]) => statements.every((sql) => /from api_keys where key_hash/.test(sql) || isAccessLogWrite(sql))

const readsReadModels = (statements: readonly string[]) => statements.some((sql) => /audit_timeline|task_summary|analytics|events|projection_checkpoints/.test(sql))

describe.each(DATABASE_BACKENDS)('HTTP API on $backend', ({ open }) => {
  let database: Database
  let store: PostgresEventStore
  let keyRing: TenantKeyRing
  let app: FastifyInstance
  let statements: string[]
  let logMark: bigint
  const unexpected: unknown[] = []
  const keys = {} as Record<'acme' | 'globex' | 'analyst' | 'revoked', { id: string; key: string }>

  beforeAll(async () => {
    database = await open()
    store = new PostgresEventStore(database)
    keyRing = randomKeyRing()
    await seedApiTenants({ historian: new Historian(store, { keyRing }), store, pool: database.pool })
    keys.acme = await createApiKey(database.pool, { role: 'tenant', tenantId: 'acme', label: 'acme compliance' })
    keys.globex = await createApiKey(database.pool, { role: 'tenant', tenantId: 'globex' })
    keys.analyst = await createApiKey(database.pool, { role: 'analyst', label: 'cross-tenant analyst' })
    keys.revoked = await createApiKey(database.pool, { role: 'tenant', tenantId: 'acme' })
    await revokeApiKey(database.pool, keys.revoked.id)
    const recording = recordingPool(database.pool)
    statements = recording.statements
    app = buildApiServer({ pool: recording.pool, store, keyRing, now: () => new Date(`${API_SEED.day}T12:00:00Z`), onError: (error) => unexpected.push(error) })
    await app.ready()
  })

  afterAll(async () => {
    await app?.close()
    await store?.close()
    await database?.close()
  })

  beforeEach(async () => {
    const [last] = await recentApiAccesses(database.pool, { limit: 1 })
    logMark = last?.id ?? 0n
    statements.length = 0
  })

  /** Access-log rows written since the test began. */
  async function newAccesses(): Promise<ApiAccessEntry[]> {
    return (await recentApiAccesses(database.pool, { limit: 1_000 })).filter((entry) => entry.id > logMark)
  }

  const get = (url: string, key?: string): Promise<LightMyRequestResponse> =>
    app.inject({ method: 'GET', url, headers: key === undefined ? {} : { authorization: `Bearer ${key}` } })

  it('refuses a credential in the query string with a 400 before any key is looked up, and logs no key', async () => {
    const attempts = [
      await get(`/v2/tenants/acme/audit?access_token=${keys.acme.key}`),
      await get(`/v2/tenants/acme/audit?api_key=${keys.acme.key}`, keys.acme.key),
      await get(`/v2/tenants/acme/audit?limit=5&token=short`),
      await get(`/v2/tenants/acme/audit?eventType=${keys.acme.key}`),
      await get(`/v2/tenants/acme/audit?${keys.acme.key}`),
    ]
    for (const response of attempts) {
      expect(response.statusCode).toBe(400)
      expect(response.json()).toEqual(CREDENTIAL_IN_QUERY)
      expect(response.body).not.toContain(keys.acme.key)
    }
    expect(statements.every(isAccessLogWrite)).toBe(true)
    const logged = await newAccesses()
    expect(logged).toHaveLength(attempts.length)
    expect(logged.every((entry) => entry.status === 400 && entry.keyId === null && entry.deniedReason === 'credential in the query string')).toBe(true)
    const { rows } = await database.pool.query<{ row: string }>(`select row_to_json(l)::text as row from api_access_log l where id > $1`, [logMark.toString()])
    expect(rows).toHaveLength(attempts.length)
    for (const { row } of rows) expect(row).not.toContain(keys.acme.key)
    expect(logged[0]!.query).toEqual({ access_token: '[redacted]' })
    expect(logged[2]!.query).toEqual({ limit: '5', token: '[redacted]' })
  })

  it('refuses requests without a valid key with one generic 401, and logs each refusal', async () => {
    const attempts = [
      await get('/v2/tenants/acme/audit'),
      await get('/v2/tenants/acme/audit', 'x'.repeat(43)),
      await get('/v2/tenants/acme/audit', keys.revoked.key),
      await get('/v2/tenants/acme/audit', `${keys.acme.key}x`),
      await app.inject({ method: 'GET', url: '/v2/tenants/acme/audit', headers: { authorization: `Basic ${keys.acme.key}` } }),
      await get('/v1/no/such/route'),
    ]
    for (const response of attempts) {
      expect(response.statusCode).toBe(401)
      expect(response.json()).toEqual(UNAUTHORIZED)
      expect(response.headers['www-authenticate']).toBe('Bearer')
    }
    expect(readsReadModels(statements)).toBe(false)
    const logged = await newAccesses()
    expect(logged).toHaveLength(attempts.length)
    expect(logged.every((entry) => entry.status === 401 && entry.keyId === null && entry.rowsReturned === 0)).toBe(true)
    expect(logged.map((entry) => entry.deniedReason)).toEqual([
      'no API key',
      'unknown, malformed or revoked API key',
      'unknown, malformed or revoked API key',
      'unknown, malformed or revoked API key',
      'no API key',
      'no API key',
    ])
    expect(logged[0]).toMatchObject({ route: '/v2/tenants/:tenantId/audit', requestedTenant: 'acme', method: 'GET' })
  })

  it('serves health and the OpenAPI document without a key, and does not log them', async () => {
    expect((await get('/healthz')).json()).toEqual({ status: 'ok' })
    const document = (await get('/openapi.json')).json() as { openapi: string; paths: Record<string, unknown>; components: { securitySchemes: unknown } }
    expect(document.openapi).toMatch(/^3\./)
    expect(document.components.securitySchemes).toEqual({ bearerAuth: expect.objectContaining({ type: 'http', scheme: 'bearer' }) })
    expect(await newAccesses()).toEqual([])
  })

  it('the OpenAPI document lists every route the server serves', async () => {
    const served: string[] = []
    const probe = buildApiServer({ pool: database.pool, store, keyRing })
    probe.addHook('onRoute', (route) => {
      if ((route.method === 'GET' || route.method === 'POST') && route.url !== '/openapi.json') served.push(route.url.replace(/:(\w+)/g, '{$1}'))
    })
    await probe.ready()
    await probe.close()
    const document = (await get('/openapi.json')).json() as { paths: Record<string, { get?: { security?: unknown } }> }
    expect(new Set(Object.keys(document.paths))).toEqual(new Set(served))
    expect(Object.keys(document.paths).sort()).toEqual(
      [
        '/healthz',
        '/metrics',
        '/v1/analytics/costs',
        '/v1/analytics/failures',
        '/v1/analytics/failures/tenants',
        '/v1/analytics/models',
        '/v1/analytics/tools',
        '/v1/api-keys/{keyId}/revoke',
        '/v1/keys/signing',
        '/v1/projections/lag',
        '/v1/tenants/{tenantId}/audit',
        '/v1/tenants/{tenantId}/dead-letters',
        '/v1/tenants/{tenantId}/dead-tasks',
        '/v1/tenants/{tenantId}/export',
        '/v1/tenants/{tenantId}/summary',
        '/v1/tenants/{tenantId}/tasks',
        '/v1/tenants/{tenantId}/tasks/{taskId}',
        '/v1/tenants/{tenantId}/tasks/{taskId}/cancel',
        '/v1/tenants/{tenantId}/tasks/{taskId}/redrive',
        '/v2/tenants/{tenantId}/audit',
        '/v2/tenants/{tenantId}/dead-tasks',
        '/v2/tenants/{tenantId}/export',
        '/v2/tenants/{tenantId}/summary',
        '/v2/tenants/{tenantId}/tasks',
        '/v2/tenants/{tenantId}/tasks/{taskId}',
      ].sort(),
    )
    expect(document.paths['/v2/tenants/{tenantId}/audit']?.get?.security).toEqual([{ bearerAuth: [] }])
  })

  it("gives a tenant key its own tenant's audit trail, page by page, and logs who asked for what", async () => {
    const first = await get('/v2/tenants/acme/audit?limit=5', keys.acme.key)
    expect(first.statusCode).toBe(200)
    const page = first.json() as { entries: { tenantId: string; sequence: string; eventType: string }[]; nextAfter: string | null }
    expect(page.entries).toHaveLength(5)
    expect(page.entries.map((entry) => entry.sequence)).toEqual(['1', '2', '3', '4', '5'])
    expect(page.nextAfter).toBe('5')
    const all = [...page.entries]
    for (let after = page.nextAfter; after !== null; ) {
      const next = (await get(`/v2/tenants/acme/audit?limit=5&after=${after}`, keys.acme.key)).json() as typeof page
      all.push(...next.entries)
      after = next.nextAfter
    }
    expect(all).toHaveLength(API_SEED.acme.events)
    expect(all.every((entry) => entry.tenantId === 'acme')).toBe(true)
    expect(all.map((entry) => entry.sequence)).toEqual(Array.from({ length: API_SEED.acme.events }, (_, index) => String(index + 1)))

    const logged = await newAccesses()
    expect(logged[0]).toMatchObject({
      keyId: keys.acme.id,
      role: 'tenant',
      keyTenantId: 'acme',
      method: 'GET',
      route: '/v2/tenants/:tenantId/audit',
      requestedTenant: 'acme',
      status: 200,
      rowsReturned: 5,
      deniedReason: null,
    })
    expect(logged[0]!.query).toMatchObject({ tenantId: 'acme', limit: 5 })
    expect(logged[1]!.query).toMatchObject({ afterSequence: page.nextAfter })
  })

  it('filters the audit trail by task, event type (repeated or comma list), model and prompt version and time', async () => {
    const byTask = (await get(`/v2/tenants/acme/audit?taskId=${API_SEED.acme.failed}`, keys.acme.key)).json() as { entries: { taskId: string }[] }
    expect(byTask.entries).toHaveLength(6)
    expect(byTask.entries.every((entry) => entry.taskId === API_SEED.acme.failed)).toBe(true)

    const types = (url: string) => get(url, keys.acme.key).then((r) => (r.json() as { entries: { eventType: string }[] }).entries.map((e) => e.eventType))
    const repeated = await types('/v2/tenants/acme/audit?eventType=AgentTaskFailed&eventType=AgentTaskCompleted')
    expect(repeated.sort()).toEqual(['AgentTaskCompleted', 'AgentTaskFailed'])
    expect((await types('/v2/tenants/acme/audit?eventType=AgentTaskFailed,AgentTaskCompleted')).sort()).toEqual(repeated.sort())

    const synthesisModel = (await get('/v2/tenants/acme/audit?modelVersion=2026-02', keys.acme.key)).json() as { entries: { modelVersion: string }[] }
    expect(synthesisModel.entries.length).toBeGreaterThan(0)
    expect(synthesisModel.entries.every((entry) => entry.modelVersion === '2026-02')).toBe(true)
    const prompt = (await get('/v2/tenants/acme/audit?promptVersion=1', keys.acme.key)).json() as { entries: unknown[] }
    expect(prompt.entries.length).toBeGreaterThan(0)

    const window = (await get('/v2/tenants/acme/audit?from=2026-01-15T09:00:00Z&to=2026-01-15T09:00:02Z', keys.acme.key)).json() as {
      entries: { occurredAt: string }[]
    }
    expect(window.entries.map((entry) => entry.occurredAt).sort()).toEqual([
      '2026-01-15T09:00:00.000Z',
      '2026-01-15T09:00:00.000Z',
      '2026-01-15T09:00:01.000Z',
      '2026-01-15T09:00:01.000Z',
    ])
  })

  it('serves task summaries, one task, and the tenant summary; 404 for a task the tenant does not have', async () => {
    const tasks = (await get('/v2/tenants/acme/tasks', keys.acme.key)).json() as { tasks: { taskId: string; status: string; failedStep: string | null }[] }
    expect(tasks.tasks.map((task) => [task.taskId, task.status])).toEqual([
      [API_SEED.acme.completed, 'completed'],
      [API_SEED.acme.failed, 'failed'],
    ])
    const failed = (await get('/v2/tenants/acme/tasks?status=failed', keys.acme.key)).json() as typeof tasks
    expect(failed.tasks).toEqual([expect.objectContaining({ taskId: API_SEED.acme.failed, failedStep: 'synthesize' })])

    const one = await get(`/v2/tenants/acme/tasks/${API_SEED.acme.completed}`, keys.acme.key)
    // Its failed synthesis call reported no usage: counted, with its 40-token estimate kept out of the totals.
    expect(one.json()).toMatchObject({
      tenantId: 'acme',
      taskId: API_SEED.acme.completed,
      status: 'completed',
      totalTokens: 1010,
      failedCallCostUsd: 0,
      callsWithoutReportedUsage: 1,
      estimatedUnreportedTokens: 40,
      estimatedUnreportedCostUsd: 0,
    })

    const globexTaskViaAcme = await get(`/v2/tenants/acme/tasks/${API_SEED.globex.failed}`, keys.acme.key)
    expect(globexTaskViaAcme.statusCode).toBe(404)
    expect(globexTaskViaAcme.json()).toMatchObject({ error: 'Not Found' })

    const summary = (await get('/v2/tenants/acme/summary', keys.acme.key)).json() as { tasks: number; byStatus: Record<string, number> }
    expect(summary).toMatchObject({
      tenantId: 'acme',
      tasks: 2,
      byStatus: { completed: 1, failed: 1, received: 0, running: 0 },
      totalTokens: 1010 + 110 + 340,
      failedCallCostUsd: 0,
      callsWithoutReportedUsage: 2,
      estimatedUnreportedTokens: 80,
      estimatedUnreportedCostUsd: 0,
    })
    const document = (await get('/openapi.json')).json() as { components: { schemas: Record<string, { properties: Record<string, unknown> }> } }
    for (const schema of ['TaskSummary', 'TenantSummary']) {
      expect(Object.keys(document.components.schemas[schema]!.properties)).toEqual(
        expect.arrayContaining(['failedCallCostUsd', 'callsWithoutReportedUsage', 'estimatedUnreportedTokens', 'estimatedUnreportedCostUsd']),
      )
    }
    expect(Object.keys(document.components.schemas.AuditEntry!.properties)).toEqual(expect.arrayContaining(['usageReported', 'finishReason', 'structuredOutputPath']))
  })

  it("refuses another tenant's data with the same 403 whether that tenant exists or not, before reading anything", async () => {
    const routes = ['audit', 'tasks', `tasks/${API_SEED.globex.failed}`, 'summary', 'export?format=csv']
    const tenants = ['globex', 'no_such_tenant', 'NOT A VALID ID!', 'a'.repeat(65)]
    const bodies = new Set<string>()
    for (const route of routes) {
      for (const tenant of tenants) {
        const version = route.startsWith('export') ? 'v1' : 'v2'
        const response = await get(`/${version}/tenants/${encodeURIComponent(tenant)}/${route}`, keys.acme.key)
        expect(response.statusCode, `${tenant}/${route}`).toBe(403)
        expect(response.headers['content-type']).toBe('application/json; charset=utf-8')
        bodies.add(response.body)
      }
    }
    expect([...bodies]).toEqual([JSON.stringify(FORBIDDEN)])
    expect(onlyKeyLookupAndLog(statements)).toBe(true)

    const logged = await newAccesses()
    expect(logged).toHaveLength(routes.length * tenants.length)
    expect(logged.every((entry) => entry.status === 403 && entry.keyId === keys.acme.id && entry.deniedReason === 'tenant outside the key scope')).toBe(true)
    expect(new Set(logged.map((entry) => entry.requestedTenant))).toEqual(new Set(tenants))
  })

  it('resists crafted attempts to widen a tenant key', async () => {
    const forbidden = [
      '/v2/tenants/acme%2F..%2Fglobex/audit',
      '/v2/tenants/acme/../globex/audit',
      '/v2/tenants/acme%252F..%252Fglobex/audit',
      '//v2/tenants/globex/audit',
      '/v2/tenants/acme/audit/../../globex/audit',
      '/v2/tenants/acme%2f..%2f..%2fv1%2ftenants%2fglobex/audit',
      `/v2/tenants/${encodeURIComponent("acme' or '1'='1")}/audit`,
      `/v2/tenants/${encodeURIComponent('acme; drop table audit_timeline;--')}/audit`,
      '/v2/tenants/ACME/audit',
      '/v2/tenants/Acme/tasks',
      `/v2/tenants/${encodeURIComponent('аcme')}/audit`, // Cyrillic a
      `/v2/tenants/${encodeURIComponent('acme\u200b')}/audit`, // zero-width space
      '/v2/tenants/acme%00/audit',
      '/v2/tenants/%20acme/audit',
      '/v2/tenants/globex/audit?tenantId=acme',
      '/v1/analytics/failures?tenantId=acme',
      '/v1/analytics/costs',
      '/v1/projections/lag',
      '/metrics',
    ]
    for (const url of forbidden) {
      const response = await get(url, keys.acme.key)
      expect(response.statusCode, url).toBe(403)
      expect(response.json(), url).toEqual(FORBIDDEN)
    }
    expect(onlyKeyLookupAndLog(statements)).toBe(true)

    // On its own tenant, a tenant filter in the query string is not a parameter at all: 400, nothing read.
    for (const url of ['/v2/tenants/acme/audit?tenantId=globex', '/v2/tenants/acme/tasks?tenantId=globex&tenantId=acme', '/v2/tenants/acme/summary?tenant=globex']) {
      const response = await get(url, keys.acme.key)
      expect(response.statusCode, url).toBe(400)
      expect(response.json(), url).toMatchObject({ error: 'Bad Request', parameter: expect.stringMatching(/^tenant/) })
    }
    // Duplicated parameters and traversal in the task ID are bad input, not a way round the scope.
    const duplicated = await get(`/v2/tenants/acme/audit?taskId=${API_SEED.acme.failed}&taskId=${API_SEED.globex.failed}`, keys.acme.key)
    expect(duplicated.statusCode).toBe(400)
    expect(duplicated.json()).toMatchObject({ parameter: 'taskId', message: 'invalid taskId: may be given only once' })
    const traversal = await get('/v2/tenants/acme/tasks/..%2F..%2Fglobex%2Ftasks%2Ftask-g', keys.acme.key)
    expect(traversal.statusCode).toBe(400)
    expect(traversal.json()).toMatchObject({ parameter: 'taskId' })
    expect(readsReadModels(statements)).toBe(false)

    // A URL the router cannot decode, or an absurdly long tenant, is a generic 400 that echoes nothing, and is logged.
    for (const url of ['/v2/tenants/%E0%A4%A/audit', `/v2/tenants/${'g'.repeat(5_000)}/audit`]) {
      const response = await get(url, keys.acme.key)
      expect(response.statusCode, url).toBe(400)
      expect(response.json()).toEqual({ error: 'Bad Request', message: 'the URL is malformed or a path parameter is too long', parameter: 'path' })
    }
    const malformed = (await newAccesses()).slice(-2)
    expect(malformed.map((entry) => [entry.keyId, entry.status, entry.deniedReason])).toEqual([
      [keys.acme.id, 400, 'malformed URL (FST_ERR_BAD_URL)'],
      [keys.acme.id, 400, 'malformed URL (FST_ERR_MAX_PARAM_LENGTH)'],
    ])
    expect(malformed[1]!.route.length).toBeLessThan(300)

    // A task ID of another tenant, asked for inside one's own tenant, finds nothing.
    const otherTask = (await get(`/v2/tenants/acme/audit?taskId=${API_SEED.globex.failed}`, keys.acme.key)).json() as { entries: unknown[] }
    expect(otherTask.entries).toEqual([])
  })

  it('answers a tenant key on the /v1 tenant routes with a 410 naming the /v2 path, reading nothing, and logs it', async () => {
    const retired = {
      '/v1/tenants/acme/audit?after=14': '/v2/tenants/{tenantId}/audit',
      '/v1/tenants/acme/tasks': '/v2/tenants/{tenantId}/tasks',
      [`/v1/tenants/acme/tasks/${API_SEED.acme.failed}`]: '/v2/tenants/{tenantId}/tasks/{taskId}',
      '/v1/tenants/acme/summary': '/v2/tenants/{tenantId}/summary',
      '/v1/tenants/acme/dead-tasks': '/v2/tenants/{tenantId}/dead-tasks',
      '/v1/tenants/acme/dead-letters': '/v2/tenants/{tenantId}/dead-tasks',
      '/v1/tenants/acme/export': '/v2/tenants/{tenantId}/export',
    }
    for (const [url, successor] of Object.entries(retired)) {
      const response = await get(url, keys.acme.key)
      expect(response.statusCode, url).toBe(410)
      expect(response.json(), url).toEqual({ error: 'Gone', message: `this /v1 route is gone for tenant keys: use GET ${successor}, whose cursors are tenant sequences` })
    }
    expect(readsReadModels(statements)).toBe(false)
    const logged = await newAccesses()
    expect(logged.map((entry) => [entry.status, entry.keyId, entry.rowsReturned])).toEqual(Object.keys(retired).map(() => [410, keys.acme.id, 0]))
    expect(logged[0]!.deniedReason).toBe('tenant key on retired /v1 route (use /v2/tenants/{tenantId}/audit)')
    // Another tenant is still the one 403.
    expect((await get('/v1/tenants/globex/audit', keys.acme.key)).json()).toEqual(FORBIDDEN)

    const document = (await get('/openapi.json')).json() as { paths: Record<string, { get?: { deprecated?: boolean; description?: string } }> }
    for (const path of ['audit', 'tasks', 'tasks/{taskId}', 'summary', 'dead-tasks', 'export']) {
      expect(document.paths[`/v1/tenants/{tenantId}/${path}`]?.get?.deprecated, path).toBe(true)
      expect(document.paths[`/v1/tenants/{tenantId}/${path}`]?.get?.description, path).toContain('until 2027-06-30')
      expect(document.paths[`/v2/tenants/{tenantId}/${path}`]?.get?.deprecated, path).toBeUndefined()
    }
  })

  it('keeps /v1 unchanged for analysts (global positions), and shows no global position anywhere under /v2', async () => {
    const v1 = (await get('/v1/tenants/acme/audit?limit=5', keys.analyst.key)).json() as { entries: Record<string, unknown>[]; nextAfter: string }
    expect(v1.entries[0]).toHaveProperty('position')
    expect(v1.entries[0]).not.toHaveProperty('sequence')
    expect(v1.nextAfter).toBe(v1.entries[4]!.position)
    const v1Next = (await get(`/v1/tenants/acme/audit?limit=5&after=${v1.nextAfter}`, keys.analyst.key)).json() as typeof v1
    expect(v1Next.entries[0]!.position).not.toBe(v1.entries[4]!.position)
    const v1Task = (await get(`/v1/tenants/acme/tasks/${API_SEED.acme.failed}`, keys.analyst.key)).json() as Record<string, unknown>
    expect(v1Task).toHaveProperty('firstPosition')

    // /v2 is /v1 less the global positions, field for field (and the audit entry's tenant sequence instead).
    const fields = async (url: string, key: string, pick: (body: never) => object = (body) => body) => Object.keys(pick((await get(url, key)).json() as never)).sort()
    const firstEntry = (body: { entries: object[] }) => body.entries[0]!
    const global = ['firstPosition', 'lastPosition', 'position']
    const without = (names: string[]) => names.filter((name) => !global.includes(name))
    expect(await fields(`/v2/tenants/acme/tasks/${API_SEED.acme.failed}`, keys.acme.key)).toEqual(without(Object.keys(v1Task)).sort())
    expect(await fields('/v2/tenants/acme/summary', keys.acme.key)).toEqual(await fields('/v1/tenants/acme/summary', keys.analyst.key))
    expect(await fields('/v2/tenants/acme/audit', keys.acme.key, firstEntry)).toEqual([...without(Object.keys(v1.entries[0]!)), 'sequence'].sort())

    // globex's events sit between and after acme's in the log: positions would show them, sequences cannot.
    const positions = new Set<string>()
    for (let after: string | null = '0'; after !== null; ) {
      const page = (await get(`/v1/tenants/acme/audit?limit=100&after=${after}`, keys.analyst.key)).json() as typeof v1
      for (const entry of page.entries) positions.add(String(entry.position))
      after = page.nextAfter
    }
    const bodies = await Promise.all(
      ['audit?limit=3', 'audit?limit=3&after=3', 'tasks', `tasks/${API_SEED.acme.failed}`, 'summary', 'dead-tasks'].map(async (path) => {
        const response = await get(`/v2/tenants/acme/${path}`, keys.acme.key)
        expect(response.statusCode, path).toBe(200)
        return response.json() as unknown
      }),
    )
    const keysOf = (value: unknown): string[] =>
      Array.isArray(value) ? value.flatMap(keysOf) : value !== null && typeof value === 'object' ? Object.entries(value).flatMap(([key, field]) => [key, ...keysOf(field)]) : []
    expect(keysOf(bodies).filter((key) => /position/i.test(key))).toEqual([])
    const audit = bodies[1] as { entries: { sequence: string }[]; nextAfter: string }
    expect(audit.entries.map((entry) => entry.sequence)).toEqual(['4', '5', '6'])
    expect(audit.nextAfter).toBe('6')
    expect(positions.size).toBe(API_SEED.acme.events)
  })

  it('lets an analyst key read every tenant and the cross-tenant analytics', async () => {
    for (const [tenant, events] of [['acme', API_SEED.acme.events], ['globex', API_SEED.globex.events]] as const) {
      const page = (await get(`/v1/tenants/${tenant}/audit`, keys.analyst.key)).json() as { entries: { tenantId: string }[] }
      expect(page.entries).toHaveLength(events)
      expect(page.entries.every((entry) => entry.tenantId === tenant)).toBe(true)
    }
    const failing = (await get('/v1/analytics/failures/tenants?step=synthesize', keys.analyst.key)).json() as { rows: { tenantId: string }[] }
    expect(failing.rows.map((row) => row.tenantId)).toEqual(['acme'])
    const routeFailures = (await get('/v1/analytics/failures?step=route&kind=task', keys.analyst.key)).json() as { rows: { tenantId: string; errorCode: string }[] }
    expect(routeFailures.rows).toEqual([expect.objectContaining({ tenantId: 'globex', step: 'route', errorCode: 'MODEL_TIMEOUT', taskFailures: 1 })])
    const models = (await get('/v1/analytics/models', keys.analyst.key)).json() as { rows: { modelId: string }[] }
    expect(models.rows.map((row) => row.modelId)).toEqual(expect.arrayContaining(['scripted-router', 'scripted-planner', 'scripted-writer']))
    const costs = (await get('/v1/analytics/costs?tenantId=acme', keys.analyst.key)).json() as { rows: { tenantId: string; day: string }[] }
    expect(costs.rows).toEqual([expect.objectContaining({ tenantId: 'acme', day: API_SEED.day })])
    const tools = (await get('/v1/analytics/tools', keys.analyst.key)).json() as { rows: { toolName: string }[] }
    expect(tools.rows.map((row) => row.toolName).sort()).toEqual(['fetch', 'search'])

    const lag = (await get('/v1/projections/lag', keys.analyst.key)).json() as { projections: { projection: string; eventsBehind: number }[] }
    expect(lag.projections.length).toBeGreaterThanOrEqual(2)
    expect(lag.projections.every((projection) => projection.eventsBehind === 0)).toBe(true)

    const metrics = await get('/metrics', keys.analyst.key)
    expect(metrics.statusCode).toBe(200)
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/)
    expect(metrics.body).toMatch(/annalist_api_requests_total\{route="\/v1\/analytics\/tools",method="GET",status="200"\} 1/)
    expect(metrics.body).toMatch(/annalist_projection_events_behind\{projection="[a-z_]+"\} 0/)

    const logged = await newAccesses()
    expect(logged.every((entry) => entry.keyId === keys.analyst.id && entry.role === 'analyst' && entry.keyTenantId === null && entry.status === 200)).toBe(true)
    expect(logged.find((entry) => entry.route === '/v1/analytics/costs')?.query).toEqual({ tenantId: 'acme' })
  })

  it('answers bad input with a 400 naming the parameter, writes nothing but the access log, never a 500', async () => {
    const cases: [string, string][] = [
      ['/v2/tenants/acme/audit?limit=1001', 'limit'],
      ['/v2/tenants/acme/audit?limit=0', 'limit'],
      ['/v2/tenants/acme/audit?limit=ten', 'limit'],
      ['/v2/tenants/acme/audit?from=yesterday', 'from'],
      ['/v2/tenants/acme/audit?from=2026-01-16&to=2026-01-15', 'from'],
      ['/v2/tenants/acme/audit?from=2000-01-01&to=2099-01-01', 'from'],
      ['/v2/tenants/acme/audit?eventType=NoSuchEvent', 'eventType'],
      ['/v2/tenants/acme/audit?after=-1', 'after'],
      ['/v2/tenants/acme/audit?after=99999999999999999999', 'after'],
      [`/v2/tenants/acme/audit?modelVersion=${encodeURIComponent("x' or 1=1--")}`, 'modelVersion'],
      [`/v2/tenants/acme/audit?promptVersion=${encodeURIComponent('1; select pg_sleep(10)')}`, 'promptVersion'],
      ['/v2/tenants/acme/audit?taskId=%00', 'taskId'],
      ['/v2/tenants/acme/audit?nonsense=1', 'nonsense'],
      ['/v2/tenants/acme/tasks?status=exploded', 'status'],
      ['/v2/tenants/acme/tasks?limit=100000', 'limit'],
      ['/v2/tenants/acme/export?format=xml', 'format'],
      ['/v1/analytics/failures?step=teleport', 'step'],
      ['/v1/analytics/failures/tenants', 'step'],
      ['/v1/analytics/models?from=1999-12-31', 'from'],
      [`/v1/analytics/costs?tenantId=${encodeURIComponent("acme' or '1'='1")}`, 'tenantId'],
      ['/v1/analytics/tools?to=2026-13-45', 'to'],
      ['/v2/tenants/acme/audit?from=2026-02-31', 'from'],
      ['/v1/analytics/costs?from=2026-04-31T10:00:00Z', 'from'],
    ]
    for (const [url, parameter] of cases) {
      const key = url.startsWith('/v1/analytics') ? keys.analyst.key : keys.acme.key
      const response = await get(url, key)
      expect(response.statusCode, url).toBe(400)
      const body = response.json() as { error: string; message: string; parameter: string }
      expect(body, url).toEqual({ error: 'Bad Request', message: expect.any(String), parameter })
      expect(body.message, url).not.toMatch(/\n/)
    }
    expect(statements.every((sql) => /^\s*select/i.test(sql) || isAccessLogWrite(sql))).toBe(true)
    const logged = await newAccesses()
    expect(logged).toHaveLength(cases.length)
    expect(logged.every((entry) => entry.status === 400 && entry.deniedReason?.startsWith('bad request: '))).toBe(true)
    expect(logged[0]!.query).toEqual({ limit: '1001' })
    expect(unexpected).toEqual([])
  })

  it('exports a tenant as JSONL that verifies against the hash chains, and as CSV', async () => {
    const jsonl = await get('/v2/tenants/acme/export', keys.acme.key)
    expect(jsonl.statusCode).toBe(200)
    expect(jsonl.headers['content-type']).toBe('application/x-ndjson; charset=utf-8')
    const verification = verifyExport(jsonl.body, 'jsonl', keyRing)
    expect(verification).toMatchObject({ ok: true })
    expect(jsonl.body).not.toContain('globex')

    const since = new Date(Date.now() - 3_600_000).toISOString()
    const csv = await get(`/v1/tenants/acme/export?format=csv&from=${since}`, keys.analyst.key)
    expect(csv.statusCode).toBe(200)
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8')
    expect(csv.body).toContain('AgentTaskCompleted')

    const logged = await newAccesses()
    expect(logged.map((entry) => [entry.status, entry.query.format])).toEqual([
      [200, 'jsonl'],
      [200, 'csv'],
    ])
    // Streamed: the access is recorded before the records are read, so it holds no row count.
    expect(logged[0]!.rowsReturned).toBeNull()
  })
})

describe.each(DATABASE_BACKENDS)('API keys and the access log on $backend', ({ open }) => {
  let database: Database

  beforeAll(async () => {
    database = await open()
  })
  afterAll(async () => {
    await database?.close()
  })

  it('stores keys only as SHA-256 hashes with a display prefix', async () => {
    const created = await createApiKey(database.pool, { role: 'tenant', tenantId: 'acme', label: 'hash check' })
    expect(created.key).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const { rows } = await database.pool.query<{ row: string; key_hash: string; prefix: string }>(
      'select to_jsonb(k)::text as row, key_hash, prefix from api_keys k where id = $1',
      [created.id],
    )
    expect(rows[0]!.row).not.toContain(created.key)
    expect(rows[0]!.key_hash).toBe(hashApiKey(created.key))
    expect(rows[0]!.prefix).toBe(created.key.slice(0, 8))
  })

  it('refuses inconsistent keys in code and in the schema', async () => {
    await expect(createApiKey(database.pool, { role: 'tenant' })).rejects.toThrow(/a tenant key needs a tenant ID/)
    await expect(createApiKey(database.pool, { role: 'analyst', tenantId: 'acme' })).rejects.toThrow(/give no tenant ID/)
    await expect(createApiKey(database.pool, { role: 'tenant', tenantId: 'Acme' })).rejects.toThrow(/invalid tenant ID/)
    await expect(
      database.pool.query(`insert into api_keys (id, key_hash, prefix, role, tenant_id) values (gen_random_uuid(), repeat('a', 64), 'abcdefgh', 'tenant', null)`),
    ).rejects.toThrow(/api_keys_tenant_scope/)
    await expect(createApiKey(database.pool, { role: 'operator', tenantId: 'acme', canApprove: true })).rejects.toThrow(/only a tenant key may approve/)
    await expect(
      database.pool.query(`insert into api_keys (id, key_hash, prefix, role, tenant_id, can_approve) values (gen_random_uuid(), repeat('b', 64), 'abcdefgh', 'operator', 'acme', true)`),
    ).rejects.toThrow(/api_keys_only_tenant_keys_approve/)
    await expect(
      database.pool.query(`insert into api_keys (id, key_hash, prefix, role, tenant_id) values (gen_random_uuid(), repeat('c', 64), 'abcdefgh', 'analyst', 'acme')`),
    ).rejects.toThrow(/api_keys_tenant_scope/)
    await expect(
      database.pool.query(`insert into api_keys (id, key_hash, prefix, role) values (gen_random_uuid(), repeat('d', 64), 'abcdefgh', 'auditor')`),
    ).rejects.toThrow(/api_keys_role_check/)
    await expect(revokeApiKey(database.pool, '00000000-0000-4000-8000-000000000000')).rejects.toThrow(/no API key with ID/)
  })

  it('keeps the access log append-only', async () => {
    const app = buildApiServer({ pool: database.pool, store: new PostgresEventStore(database), keyRing: randomKeyRing() })
    await app.inject({ method: 'GET', url: '/v1/tenants/acme/summary' })
    await app.close()
    const [entry] = await recentApiAccesses(database.pool, { limit: 1 })
    expect(entry).toMatchObject({ status: 401, route: '/v1/tenants/:tenantId/summary' })
    await expect(database.pool.query('update api_access_log set status = 200')).rejects.toThrow(/append-only/)
    await expect(database.pool.query('delete from api_access_log')).rejects.toThrow(/append-only/)
  })

  it('answers nothing it could not record in the access log', async () => {
    const errors: unknown[] = []
    const { key } = await createApiKey(database.pool, { role: 'analyst' })
    const unloggable = inspectedPool(database.pool, (sql) => (/insert into api_access_log/.test(sql) ? new Error('log volume full') : undefined))
    const app = buildApiServer({ pool: unloggable, store: new PostgresEventStore(database), keyRing: randomKeyRing(), onError: (error) => errors.push(error) })
    const response = await app.inject({ method: 'GET', url: '/v1/tenants/acme/summary', headers: { authorization: `Bearer ${key}` } })
    await app.close()
    expect(response.statusCode).toBe(500)
    expect(response.json()).toEqual({ error: 'Internal Server Error', message: 'the request could not be recorded in the access log, so it was not answered' })
    expect(response.body).not.toContain('tasks')
    expect(errors).toEqual([expect.objectContaining({ message: 'log volume full' })])
  })

  it('answers an unexpected failure with a generic 500, logs its stack, and records it', async () => {
    const errors: unknown[] = []
    const { key } = await createApiKey(database.pool, { role: 'analyst' })
    const failing = inspectedPool(database.pool, (sql) => (/task_summary/.test(sql) ? new Error('disk on fire') : undefined))
    const app = buildApiServer({ pool: failing, store: new PostgresEventStore(database), keyRing: randomKeyRing(), onError: (error) => errors.push(error) })
    const response = await app.inject({ method: 'GET', url: '/v1/tenants/acme/summary', headers: { authorization: `Bearer ${key}` } })
    await app.close()
    expect(response.statusCode).toBe(500)
    expect(response.json()).toEqual({ error: 'Internal Server Error', message: 'the request failed on the server; it has been logged' })
    expect(response.body).not.toContain('disk on fire')
    expect(errors).toEqual([expect.objectContaining({ message: 'disk on fire' })])
    const [entry] = await recentApiAccesses(database.pool, { limit: 1 })
    expect(entry).toMatchObject({ status: 500, deniedReason: 'server error', route: '/v1/tenants/:tenantId/summary' })
  })
})
