import { Client, Connection } from '@temporalio/client'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest'
import { FORBIDDEN } from '../../api/accessControl'
import { recentApiAccesses, type ApiAccessEntry } from '../../api/accessLog'
import { createApiKey, createFirstOperatorKey, listApiKeys, revokeApiKey, type ApiKeyRequest } from '../../api/keys'
import { buildApiServer } from '../../api/server'
import { apiCancelTask } from '../../cli/runtime/cancelRequest'
import { apiRedriveTask } from '../../cli/runtime/redriveRequest'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import { API_SEED, seedApiTenants } from '../support/apiSeed'
import { DATABASE_BACKENDS, freshPostgresDatabase, randomKeyRing } from '../support/databases'
import { waitUntil } from '../support/waitUntil'

/** The keys every test uses, one per role and scope. */
const KEYS = {
  tenant: { role: 'tenant', tenantId: 'acme' },
  approver: { role: 'tenant', tenantId: 'acme', canApprove: true },
  analyst: { role: 'analyst' },
  operator: { role: 'operator' },
  acmeOperator: { role: 'operator', tenantId: 'acme' },
} as const satisfies Record<string, ApiKeyRequest>
type KeyName = keyof typeof KEYS

/** Each route and the permission it declares, written out by hand: a route added without one fails here. */
const DECLARED: Record<string, string> = {
  'GET /healthz': 'public',
  'GET /openapi.json': 'public',
  'GET /v1/keys/signing': 'public',
  'GET /metrics': 'operations.read',
  'GET /v1/projections/lag': 'operations.read',
  'GET /v1/analytics/failures': 'analytics.read',
  'GET /v1/analytics/failures/tenants': 'analytics.read',
  'GET /v1/analytics/models': 'analytics.read',
  'GET /v1/analytics/costs': 'analytics.read',
  'GET /v1/analytics/tools': 'analytics.read',
  'GET /v1/tenants/:tenantId/audit': 'tenant.read',
  'GET /v1/tenants/:tenantId/tasks': 'tenant.read',
  'GET /v1/tenants/:tenantId/tasks/:taskId': 'tenant.read',
  'GET /v1/tenants/:tenantId/summary': 'tenant.read',
  'GET /v1/tenants/:tenantId/dead-tasks': 'tenant.read',
  'GET /v1/tenants/:tenantId/dead-letters': 'tenant.read',
  'GET /v1/tenants/:tenantId/export': 'tenant.read',
  'GET /v2/tenants/:tenantId/audit': 'tenant.read',
  'GET /v2/tenants/:tenantId/tasks': 'tenant.read',
  'GET /v2/tenants/:tenantId/tasks/:taskId': 'tenant.read',
  'GET /v2/tenants/:tenantId/summary': 'tenant.read',
  'GET /v2/tenants/:tenantId/dead-tasks': 'tenant.read',
  'GET /v2/tenants/:tenantId/export': 'tenant.read',
  'POST /v1/api-keys/:keyId/revoke': 'key.revoke',
  'POST /v1/tenants/:tenantId/tasks/:taskId/redrive': 'task.redrive',
  'POST /v1/tenants/:tenantId/tasks/:taskId/cancel': 'task.cancel',
}

describe.each(DATABASE_BACKENDS)('roles over the HTTP API on $backend', ({ open }) => {
  let database: Database
  let store: PostgresEventStore
  let connection: Connection
  let app: FastifyInstance
  let logMark: bigint
  const keys = {} as Record<KeyName, { id: string; key: string }>

  beforeAll(async () => {
    database = await open()
    store = new PostgresEventStore(database)
    const keyRing = randomKeyRing()
    const historian = new Historian(store, { keyRing })
    await seedApiTenants({ historian, store, pool: database.pool })
    for (const [name, request] of Object.entries(KEYS)) keys[name as KeyName] = await createApiKey(database.pool, request)
    connection = await Connection.connect({ address: inject('temporalAddress') })
    const client = new Client({ connection })
    const redriveTask = apiRedriveTask({ client, historian, keyRing, taskQueue: `roles-${Date.now()}` })
    app = buildApiServer({ pool: database.pool, store, keyRing, now: () => new Date(`${API_SEED.day}T12:00:00Z`), redriveTask, cancelTask: apiCancelTask(client) })
    await app.ready()
  })

  afterAll(async () => {
    await app?.close()
    await connection?.close()
    await store?.close()
    await database?.close()
  })

  beforeEach(async () => {
    const [last] = await recentApiAccesses(database.pool, { limit: 1 })
    logMark = last?.id ?? 0n
  })

  async function newAccesses(): Promise<ApiAccessEntry[]> {
    return (await recentApiAccesses(database.pool, { limit: 1_000 })).filter((entry) => entry.id > logMark)
  }

  const call = (method: 'GET' | 'POST', url: string, key: string, body?: object): Promise<LightMyRequestResponse> =>
    app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(body ? { payload: body } : {}) })

  it('every route declares a permission (or public)', async () => {
    const declared: Record<string, string> = {}
    const probe = buildApiServer({ pool: database.pool, store, keyRing: randomKeyRing() })
    probe.addHook('onRoute', (route) => {
      if (route.method !== 'HEAD') declared[`${String(route.method)} ${route.url}`] = String(route.config?.access?.permission)
    })
    await probe.ready()
    await probe.close()
    expect(declared).toEqual(DECLARED)
  })

  /** Per key: the status of each read route, for its own tenant (acme) and another (globex). */
  const READS: Record<KeyName, readonly number[]> = {
    //             acme summary, globex summary, analytics, lag, metrics, acme summary on /v1 (gone for tenant keys)
    tenant: [200, 403, 403, 403, 403, 410],
    approver: [200, 403, 403, 403, 403, 410],
    analyst: [200, 200, 200, 200, 200, 200],
    operator: [403, 403, 403, 200, 200, 403],
    acmeOperator: [403, 403, 403, 403, 403, 403],
  }
  it.each(Object.keys(READS) as KeyName[])('reads as the matrix says for the %s key, refusing with the one 403 body, and logs every request', async (name) => {
    const urls = ['/v2/tenants/acme/summary', '/v2/tenants/globex/summary', '/v1/analytics/tools', '/v1/projections/lag', '/metrics', '/v1/tenants/acme/summary']
    const responses = []
    for (const url of urls) responses.push(await call('GET', url, keys[name].key))
    expect(responses.map((response) => response.statusCode)).toEqual(READS[name])
    for (const response of responses.filter((response) => response.statusCode === 403)) expect(response.json()).toEqual(FORBIDDEN)
    const logged = await newAccesses()
    expect(logged.map((entry) => [entry.keyId, entry.role, entry.status])).toEqual(READS[name].map((status) => [keys[name].id, KEYS[name].role, status]))
  })

  it('redrives only for operators whose scope covers the tenant, refusing others alike whether the tenant exists or not', async () => {
    const url = (tenant: string) => `/v1/tenants/${tenant}/tasks/${API_SEED.acme.failed}/redrive`
    const refusedBodies = new Set<string>()
    for (const name of ['tenant', 'approver', 'analyst'] as const) {
      const response = await call('POST', url('acme'), keys[name].key, {})
      expect(response.statusCode, name).toBe(403)
      refusedBodies.add(response.body)
    }
    for (const tenant of ['globex', 'no_such_tenant', 'NOT VALID']) {
      const response = await call('POST', url(encodeURIComponent(tenant)), keys.acmeOperator.key, {})
      expect(response.statusCode, tenant).toBe(403)
      refusedBodies.add(response.body)
    }
    expect([...refusedBodies]).toEqual([JSON.stringify(FORBIDDEN)])
    const refusals = await newAccesses()
    expect(refusals.map((entry) => entry.deniedReason)).toEqual([
      'role tenant lacks task.redrive',
      'role tenant lacks task.redrive',
      'role analyst lacks task.redrive',
      'tenant outside the key scope',
      'tenant outside the key scope',
      'tenant outside the key scope',
    ])
    expect(refusals.every((entry) => entry.route === '/v1/tenants/:tenantId/tasks/:taskId/redrive' && entry.method === 'POST')).toBe(true)

    // Allowed: the request reaches the redrive itself, which refuses a task that failed without being dead-lettered.
    for (const name of ['operator', 'acmeOperator'] as const) {
      const response = await call('POST', url('acme'), keys[name].key, { note: 'provider fixed' })
      expect(response.statusCode, name).toBe(409)
      expect(response.json()).toMatchObject({ error: 'Conflict', message: expect.stringMatching(new RegExp(`^cannot redrive acme/${API_SEED.acme.failed}: `)) })
    }
    const allowed = await newAccesses()
    expect(allowed.slice(-2).map((entry) => [entry.keyId, entry.status, entry.requestedTenant])).toEqual([
      [keys.operator.id, 409, 'acme'],
      [keys.acmeOperator.id, 409, 'acme'],
    ])
    const bad = await call('POST', url('acme'), keys.operator.key, { note: 'x', by: 'mallory' })
    expect(bad.statusCode).toBe(400)
  })

  it('cancels only for operators whose scope covers the tenant, refusing others alike, and needs a reason', async () => {
    const url = (tenant: string) => `/v1/tenants/${tenant}/tasks/${API_SEED.acme.completed}/cancel`
    const refused = []
    for (const name of ['tenant', 'approver', 'analyst'] as const) refused.push(await call('POST', url('acme'), keys[name].key, { reason: 'stop it' }))
    for (const tenant of ['globex', 'no_such_tenant']) refused.push(await call('POST', url(tenant), keys.acmeOperator.key, { reason: 'stop it' }))
    expect(refused.map((response) => response.statusCode)).toEqual([403, 403, 403, 403, 403])
    expect(new Set(refused.map((response) => response.body))).toEqual(new Set([JSON.stringify(FORBIDDEN)]))
    expect((await newAccesses()).map((entry) => entry.deniedReason)).toEqual([
      'role tenant lacks task.cancel',
      'role tenant lacks task.cancel',
      'role analyst lacks task.cancel',
      'tenant outside the key scope',
      'tenant outside the key scope',
    ])
    // Allowed: the request reaches the cancel itself, which finds no running pipeline for the seeded task.
    for (const name of ['operator', 'acmeOperator'] as const) {
      const response = await call('POST', url('acme'), keys[name].key, { reason: 'runaway task' })
      expect(response.statusCode, name).toBe(409)
      expect(response.json()).toEqual({ error: 'Conflict', message: `cannot cancel acme/${API_SEED.acme.completed}: no pipeline was ever started for it` })
    }
    expect((await call('POST', url('acme'), keys.operator.key, { reason: '   ' })).statusCode).toBe(400)
    expect((await call('POST', url('acme'), keys.operator.key, {})).statusCode).toBe(400)
  })

  it('answers the redrive route with 503 when the server has no Temporal connection', async () => {
    const offline = buildApiServer({ pool: database.pool, store, keyRing: randomKeyRing() })
    try {
      const response = await offline.inject({ method: 'POST', url: `/v1/tenants/acme/tasks/${API_SEED.acme.failed}/redrive`, headers: { authorization: `Bearer ${keys.operator.key}` } })
      expect(response.statusCode).toBe(503)
      expect((await newAccesses()).at(-1)).toMatchObject({ status: 503, deniedReason: 'no Temporal connection' })
    } finally {
      await offline.close()
    }
  })

  it("revokes keys for operators only, a scoped operator only its own tenant's, refusing an unknown key as another tenant's", async () => {
    const victims = {
      acmeTenant: await createApiKey(database.pool, { role: 'tenant', tenantId: 'acme' }),
      globexTenant: await createApiKey(database.pool, { role: 'tenant', tenantId: 'globex' }),
      analyst: await createApiKey(database.pool, { role: 'analyst' }),
    }
    const revoke = (keyId: string, by: KeyName) => call('POST', `/v1/api-keys/${keyId}/revoke`, keys[by].key)
    const unknown = '00000000-0000-4000-8000-000000000000'

    const refused = [
      await revoke(victims.acmeTenant.id, 'tenant'),
      await revoke(victims.acmeTenant.id, 'approver'),
      await revoke(victims.acmeTenant.id, 'analyst'),
      await revoke(victims.globexTenant.id, 'acmeOperator'),
      await revoke(victims.analyst.id, 'acmeOperator'),
      await revoke(unknown, 'acmeOperator'),
      await revoke('not-a-key-id', 'acmeOperator'),
    ]
    expect(refused.map((response) => response.statusCode)).toEqual([403, 403, 403, 403, 403, 403, 403])
    expect(new Set(refused.map((response) => response.body))).toEqual(new Set([JSON.stringify(FORBIDDEN)]))
    expect((await listApiKeys(database.pool)).filter((key) => key.revokedAt !== null)).toEqual([])

    const own = await revoke(victims.acmeTenant.id, 'acmeOperator')
    expect(own.statusCode).toBe(200)
    expect(own.json()).toEqual({ keyId: victims.acmeTenant.id, revokedAt: expect.any(String) })
    expect((await revoke(victims.globexTenant.id, 'operator')).statusCode).toBe(200)
    expect((await revoke(victims.analyst.id, 'operator')).statusCode).toBe(200)
    const missing = await revoke(unknown, 'operator')
    expect(missing.statusCode).toBe(404)
    expect(missing.json()).toMatchObject({ error: 'Not Found', message: `no API key with ID "${unknown}"` })
    // A revoked key stops working at once.
    expect((await call('GET', '/v2/tenants/acme/summary', victims.acmeTenant.key)).statusCode).toBe(401)

    const revokedIds = (await listApiKeys(database.pool)).filter((key) => key.revokedAt !== null).map((key) => key.keyId)
    expect(new Set(revokedIds)).toEqual(new Set(Object.values(victims).map((victim) => victim.id)))
    const logged = (await newAccesses()).filter((entry) => entry.route === '/v1/api-keys/:keyId/revoke')
    expect(logged.map((entry) => entry.status)).toEqual([403, 403, 403, 403, 403, 403, 403, 200, 200, 200, 404])
    expect(logged.slice(0, 3).map((entry) => entry.deniedReason)).toEqual(['role tenant lacks key.revoke', 'role tenant lacks key.revoke', 'role analyst lacks key.revoke'])
    expect(logged.slice(3, 7).every((entry) => entry.deniedReason === 'tenant outside the key scope')).toBe(true)
  })
})

describe('the bootstrap operator key', () => {
  it('waits for a racing uncommitted global operator key and then creates none; none while one is active; one again once none is', async () => {
    const database = await freshPostgresDatabase()
    try {
      // A bootstrap racing another one that has inserted but not committed yet waits for it, then sees its key.
      const racer = await database.pool.connect()
      let first: { id: string }[]
      try {
        await racer.query('begin')
        const { rows } = await racer.query<{ id: string }>(
          `insert into api_keys (id, key_hash, prefix, role, label) values (gen_random_uuid(), repeat('e', 64), 'eeeeeeee', 'operator', 'racer') returning id`,
        )
        first = rows
        let settled = false
        const racing = createFirstOperatorKey(database.pool, 'root').finally(() => (settled = true))
        const waiting = async () => (await database.pool.query(`select 1 from pg_locks where relation = 'api_keys'::regclass and not granted`)).rows.length > 0
        await waitUntil("the bootstrap to wait for the racer's uncommitted key", async () => settled || (await waiting()), { intervalMs: 5 })
        await racer.query('commit')
        expect(await racing).toBeUndefined()
      } finally {
        racer.release()
      }
      await createApiKey(database.pool, { role: 'operator', tenantId: 'acme' })
      expect(await createFirstOperatorKey(database.pool)).toBeUndefined()
      await revokeApiKey(database.pool, first[0]!.id)
      const again = await createFirstOperatorKey(database.pool, 'after revocation')
      expect(again).toEqual({ id: expect.any(String), key: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) })
      expect((await listApiKeys(database.pool)).map((key) => [key.role, key.tenantId, key.revokedAt === null])).toEqual([
        ['operator', null, false],
        ['operator', 'acme', true],
        ['operator', null, true],
      ])
    } finally {
      await database.close()
    }
  })
})
