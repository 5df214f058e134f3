import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { forgetClientAddresses, recentApiAccesses, type ApiAccessEntry } from '../../api/accessLog'
import { createApiKey } from '../../api/keys'
import { TOO_MANY_REQUESTS } from '../../api/rateLimits'
import { buildApiServer, type ApiServerOptions } from '../../api/server'
import { openDatabase, type Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { DATABASE_BACKENDS, randomKeyRing, randomSuffix } from '../support/databases'
import { waitUntil } from '../support/waitUntil'

/** A pool whose next audit-trail read (when `holdNext` is set) waits until `release()`: a request held in flight. */
function gatedPool(pool: pg.Pool) {
  let holdNext = false
  let entered = false
  let open: () => void = () => undefined
  let gate = Promise.resolve()
  const gated = new Proxy(pool, {
    get(target, property) {
      if (property === 'query') {
        return async (...args: unknown[]) => {
          const first = args[0] as string | { text?: string }
          const sql = typeof first === 'string' ? first : (first.text ?? '')
          if (holdNext && /audit_timeline/.test(sql)) {
            holdNext = false
            entered = true
            await gate
          }
          return (target.query as (...a: unknown[]) => unknown)(...args)
        }
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    },
  })
  return {
    pool: gated,
    hold() {
      holdNext = true
      entered = false
      gate = new Promise<void>((resolve) => (open = resolve))
    },
    entered: () => entered,
    release: () => open(),
  }
}

/** Sends one request over a raw socket and resolves with everything the server wrote once it closes the connection. */
function rawExchange(port: number, write: (socket: net.Socket) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let received = ''
    socket.on('data', (chunk) => (received += chunk.toString('latin1')))
    socket.on('error', (error) => ((error as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(error)))
    socket.on('close', () => resolve(received))
    socket.on('connect', () => write(socket))
  })
}

describe.each(DATABASE_BACKENDS)('API limits on $backend', ({ open }) => {
  let database: Database
  let store: PostgresEventStore
  const apps: FastifyInstance[] = []
  const keys = {} as Record<'acmeA' | 'acmeB' | 'globex' | 'analyst' | 'operator', { id: string; key: string }>

  beforeAll(async () => {
    database = await open()
    store = new PostgresEventStore(database)
    keys.acmeA = await createApiKey(database.pool, { role: 'tenant', tenantId: 'acme' })
    keys.acmeB = await createApiKey(database.pool, { role: 'tenant', tenantId: 'acme' })
    keys.globex = await createApiKey(database.pool, { role: 'tenant', tenantId: 'globex' })
    keys.analyst = await createApiKey(database.pool, { role: 'analyst' })
    keys.operator = await createApiKey(database.pool, { role: 'operator' })
  })

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()))
  })

  afterAll(async () => {
    await store?.close()
    await database?.close()
  })

  async function server(options: Partial<ApiServerOptions> = {}): Promise<FastifyInstance> {
    const app = buildApiServer({ pool: database.pool, store, keyRing: randomKeyRing(), onError: () => undefined, ...options })
    apps.push(app)
    await app.ready()
    return app
  }

  const get = (app: FastifyInstance, url: string, key: { key: string }, remoteAddress?: string): Promise<LightMyRequestResponse> =>
    app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key.key}` }, ...(remoteAddress ? { remoteAddress } : {}) })

  const lastAccessOf = async (key: { id: string }): Promise<ApiAccessEntry | undefined> => (await recentApiAccesses(database.pool, { keyId: key.id, limit: 1 }))[0]

  const expectTooMany = (response: LightMyRequestResponse) => {
    expect(response.statusCode).toBe(429)
    expect(response.json()).toEqual(TOO_MANY_REQUESTS)
    expect(response.headers['retry-after']).toMatch(/^[1-9]\d*$/)
  }

  it('refuses the request after a key used its per-minute rate with 429 and Retry-After, and not another key of the same tenant', async () => {
    const app = await server({ limits: { requestsPerKeyPerMinute: 3 } })
    for (let i = 0; i < 3; i += 1) expect((await get(app, '/v2/tenants/acme/tasks', keys.acmeA)).statusCode).toBe(200)
    expectTooMany(await get(app, '/v2/tenants/acme/tasks', keys.acmeA))
    expect(await lastAccessOf(keys.acmeA)).toMatchObject({ status: 429, deniedReason: 'rate limited', route: '/v2/tenants/:tenantId/tasks' })
    expect((await get(app, '/v2/tenants/acme/tasks', keys.acmeB)).statusCode).toBe(200)
  })

  it("counts a tenant's keys together on expensive routes, never another tenant's nor an analyst's requests", async () => {
    const app = await server({ limits: { expensivePerTenantPerMinute: 2 } })
    expect((await get(app, '/v2/tenants/acme/audit', keys.acmeA)).statusCode).toBe(200)
    expect((await get(app, '/v2/tenants/acme/audit', keys.acmeB)).statusCode).toBe(200)
    const refused = await get(app, '/v2/tenants/acme/audit', keys.acmeA)
    expectTooMany(refused)
    expect(await lastAccessOf(keys.acmeA)).toMatchObject({ status: 429, deniedReason: 'rate limited' })
    // Not an expensive route: only the per-key rate applies.
    expect((await get(app, '/v2/tenants/acme/tasks', keys.acmeB)).statusCode).toBe(200)
    expect((await get(app, '/v2/tenants/globex/audit', keys.globex)).statusCode).toBe(200)
    expect((await get(app, '/v2/tenants/acme/audit', keys.analyst)).statusCode).toBe(200)
    expect((await get(app, '/v2/tenants/acme/audit', keys.analyst)).statusCode).toBe(200)
    expect((await get(app, '/v2/tenants/acme/audit', keys.analyst)).statusCode).toBe(200)

    // An analyst busy on acme does not use up acme's share either.
    const busy = await server({ limits: { expensivePerTenantPerMinute: 1 } })
    for (let i = 0; i < 3; i += 1) expect((await get(busy, '/v2/tenants/acme/audit', keys.analyst)).statusCode).toBe(200)
    expect((await get(busy, '/v2/tenants/acme/audit', keys.acmeA)).statusCode).toBe(200)
  })

  it('refuses an expensive request while the key (or its tenant) has its limit in flight, and admits one once it finished', async () => {
    const gated = gatedPool(database.pool)
    const app = await server({ pool: gated.pool, limits: { expensiveInFlightPerKey: 1, expensiveInFlightPerTenant: 1 } })
    gated.hold()
    const held = get(app, '/v2/tenants/acme/audit', keys.acmeA)
    await waitUntil('the first audit read to be held', gated.entered)
    const sameKey = await get(app, '/v2/tenants/acme/audit', keys.acmeA)
    expectTooMany(sameKey)
    expect(sameKey.headers['retry-after']).toBe('1')
    expect(await lastAccessOf(keys.acmeA)).toMatchObject({ status: 429, deniedReason: 'too many concurrent requests' })
    expectTooMany(await get(app, '/v2/tenants/acme/audit', keys.acmeB))
    expect((await get(app, '/v2/tenants/acme/tasks', keys.acmeB)).statusCode).toBe(200)
    expect((await get(app, '/v2/tenants/globex/audit', keys.globex)).statusCode).toBe(200)
    expect((await get(app, '/v2/tenants/acme/audit', keys.analyst)).statusCode).toBe(200)
    gated.release()
    expect((await held).statusCode).toBe(200)
    await waitUntil('a new audit read of the same key to be admitted', async () => (await get(app, '/v2/tenants/acme/audit', keys.acmeA)).statusCode === 200)
  })

  it('gives the in-flight slot back when the client goes away before its response', async () => {
    const gated = gatedPool(database.pool)
    const app = await server({ pool: gated.pool, limits: { expensiveInFlightPerKey: 1 } })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as AddressInfo
    gated.hold()
    const request = http.get({ port, host: '127.0.0.1', path: '/v2/tenants/acme/audit', headers: { authorization: `Bearer ${keys.acmeA.key}` } })
    request.on('error', () => undefined)
    await waitUntil('the audit read to be held', gated.entered)
    expectTooMany(await get(app, '/v2/tenants/acme/audit', keys.acmeA))
    request.destroy()
    await waitUntil('the slot to be given back', async () => (await get(app, '/v2/tenants/acme/audit', keys.acmeA)).statusCode === 200)
    gated.release()
  })

  it('closes a request whose body does not arrive within the request timeout and records it, but lets a slow answer finish', async () => {
    const gated = gatedPool(database.pool)
    const app = await server({ pool: gated.pool, timeouts: { headersTimeoutMs: 200, requestTimeoutMs: 300 } })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as AddressInfo
    gated.hold()
    const slowAnswer = new Promise<number>((resolve, reject) => {
      http
        .get({ port, host: '127.0.0.1', path: '/v2/tenants/acme/audit', headers: { authorization: `Bearer ${keys.analyst.key}` } }, (response) => {
          response.resume()
          response.on('end', () => resolve(response.statusCode ?? 0))
        })
        .on('error', reject)
    })
    await waitUntil('the audit read to be held', gated.entered)
    let dribble: NodeJS.Timeout | undefined
    const answer = await rawExchange(port, (socket) => {
      socket.write(
        'POST /v1/tenants/acme/tasks/t-1/redrive HTTP/1.1\r\nHost: localhost\r\n' +
          `Authorization: Bearer ${keys.operator.key}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"note":"`,
      )
      dribble = setInterval(() => socket.writable && socket.write('a'), 50)
    })
    clearInterval(dribble)
    expect(answer === '' || answer.startsWith('HTTP/1.1 408')).toBe(true)
    await waitUntil('the timeout to be recorded', async () =>
      (await recentApiAccesses(database.pool, { limit: 20 })).some((entry) => entry.status === 408 && entry.deniedReason === 'request not received in time'),
    )
    // The held request is older than the one that just timed out, but it was received whole: only its answer is slow.
    gated.release()
    expect(await slowAnswer).toBe(200)
  })

  it('answers 431 to 16 KB of headers and records it like any refusal without a key', async () => {
    const app = await server()
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as AddressInfo
    const answer = await rawExchange(port, (socket) => socket.end(`GET /v2/tenants/acme/audit HTTP/1.1\r\nHost: localhost\r\nX-Padding: ${'x'.repeat(16 * 1024)}\r\n\r\n`))
    expect(answer).toMatch(/^HTTP\/1\.1 431 /)
    await waitUntil('the 431 to be recorded', async () => {
      const { rows } = await database.pool.query<{ count: string }>(
        `select count from api_access_refusals where status = 431 and reason = 'headers too large' and client_address = '127.0.0.1'`,
      )
      return rows.length > 0
    })
  })

  it('refuses a body over the limit with 413', async () => {
    const app = await server({ timeouts: { bodyLimitBytes: 100 } })
    const response = await app.inject({
      method: 'POST',
      url: '/v1/tenants/acme/tasks/t-1/redrive',
      headers: { authorization: `Bearer ${keys.operator.key}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ note: 'n'.repeat(200) }),
    })
    expect(response.statusCode).toBe(413)
    expect(await lastAccessOf(keys.operator)).toMatchObject({ status: 413 })
  })

  it('records the socket address, and X-Forwarded-For only from a trusted proxy', async () => {
    const forwarded = { 'x-forwarded-for': '203.0.113.7' }
    const ask = async (app: FastifyInstance, remoteAddress: string) => {
      await app.inject({ method: 'GET', url: '/v2/tenants/acme/tasks', remoteAddress, headers: { authorization: `Bearer ${keys.acmeA.key}`, ...forwarded } })
      return (await lastAccessOf(keys.acmeA))?.clientAddress
    }
    const direct = await server()
    expect(await ask(direct, '10.1.2.3')).toBe('10.1.2.3')
    const behindProxy = await server({ trustedProxies: ['10.0.0.0/8'] })
    expect(await ask(behindProxy, '10.1.2.3')).toBe('203.0.113.7')
    expect(await ask(behindProxy, '192.0.2.1')).toBe('192.0.2.1')
  })

  it('logs only the first refusals without a key per address and minute in full, and counts them all', async () => {
    const app = await server({ refusalsLoggedPerMinute: 3 })
    const address = `10.${Number.parseInt(randomSuffix(1), 16)}.${Number.parseInt(randomSuffix(1), 16)}.9`
    for (let i = 0; i < 7; i += 1) {
      const response = await app.inject({ method: 'GET', url: '/v2/tenants/acme/audit', remoteAddress: address })
      expect(response.statusCode).toBe(401)
    }
    const { rows: counts } = await database.pool.query<{ count: string }>(
      `select count from api_access_refusals where client_address = $1 and status = 401 and reason = 'no API key'`,
      [address],
    )
    expect(counts.reduce((sum, row) => sum + Number(row.count), 0)).toBe(7)
    const logged = (await recentApiAccesses(database.pool, { limit: 1_000 })).filter((entry) => entry.clientAddress === address)
    // Three rows per minute: all seven requests normally fall in one minute, but a minute may turn mid-test.
    expect(logged).toHaveLength(counts.reduce((sum, row) => sum + Math.min(Number(row.count), 3), 0))
    expect(logged.every((entry) => entry.status === 401 && entry.keyId === null && entry.deniedReason === 'no API key')).toBe(true)

    // With a valid key every request keeps its own row.
    const before = (await recentApiAccesses(database.pool, { keyId: keys.globex.id, limit: 1_000 })).length
    for (let i = 0; i < 5; i += 1) await get(app, '/v2/tenants/acme/tasks', keys.globex, address)
    expect((await recentApiAccesses(database.pool, { keyId: keys.globex.id, limit: 1_000 })).length).toBe(before + 5)
  })

  it('removes client addresses past the retention, keeps recent ones, and still refuses any other update or delete', async () => {
    const insert = (age: string, address: string) =>
      database.pool.query<{ id: string }>(
        `insert into api_access_log (at, method, route, status, client_address) values (now() - $1::interval, 'GET', '/v1/x', 401, $2) returning id`,
        [age, address],
      )
    const old = (await insert('40 days', '198.51.100.1')).rows[0]!.id
    const recent = (await insert('1 day', '198.51.100.2')).rows[0]!.id
    await database.pool.query(
      `insert into api_access_refusals (client_address, minute, status, reason, count)
       values ('198.51.100.3', date_trunc('minute', now() - interval '40 days'), 401, 'no API key', 4)`,
    )
    expect(await forgetClientAddresses(database.pool, 30)).toBeGreaterThanOrEqual(1)
    const address = async (id: string) => (await database.pool.query<{ client_address: string | null }>('select client_address from api_access_log where id = $1', [id])).rows[0]!.client_address
    expect(await address(old)).toBeNull()
    expect(await address(recent)).toBe('198.51.100.2')
    const { rows: refusals } = await database.pool.query(`select client_address from api_access_refusals where minute < now() - interval '30 days'`)
    expect(refusals.every((row: { client_address: string | null }) => row.client_address === null)).toBe(true)

    // Without parameters: on PGlite a failing parameterized statement breaks the pool's connection.
    const refusedStatements = [
      `update api_access_log set client_address = null where id = ${recent}`,
      `update api_access_log set status = 200 where id = ${old}`,
      `update api_access_log set client_address = '192.0.2.9' where id = ${old}`,
      `delete from api_access_log where id = ${old}`,
    ]
    for (const sql of refusedStatements) await expect(database.pool.query(sql)).rejects.toThrow(/append-only/)
    // Not even with the cutoff the forgetting function sets for itself.
    const client = await database.pool.connect()
    try {
      await client.query('begin')
      await client.query(`select set_config('annalist.forget_addresses_before', now()::text, true)`)
      await expect(client.query(`update api_access_log set status = 200, client_address = null where id = ${old}`)).rejects.toThrow(/append-only/)
      await client.query('rollback')
    } finally {
      client.release()
    }
    expect(await address(old)).toBeNull()
    await expect(forgetClientAddresses(database.pool, 0)).rejects.toThrow(RangeError)
  })
})

describe('statement timeout', () => {
  it('cancels a PostgreSQL statement that runs past it, with a clear error', async () => {
    const database = await openDatabase({ url: inject('postgresAdminUrl'), migrate: false, statementTimeoutMs: 200 })
    try {
      await expect(database.pool.query('select pg_sleep(5)')).rejects.toThrow(/canceling statement due to statement timeout/)
      expect((await database.pool.query<{ ok: number }>('select 1 as ok')).rows[0]!.ok).toBe(1)
    } finally {
      await database.close()
    }
  })
})
