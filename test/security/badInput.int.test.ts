/**
 * The bad-input security suite (issue 14): one test per probe, each asserting the probe's fixed answer and that nothing
 * was written: every table of the public schema keeps its row count, except the access log, which gains exactly the
 * probe's row (for probes without a valid key: at most one row, and their count per address and minute in
 * api_access_refusals).
 *
 * Covered in their own suites: tenant-scoped ordering under /v2 (test/int/tenantOrdering.int.test.ts), 429 rate and
 * concurrency limits, request timeouts, 431 and the aggregation of unauthenticated refusals
 * (test/int/apiLimits.int.test.ts), exports that stream while others are answered (test/int/exportStreaming.int.test.ts).
 */
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CREDENTIAL_IN_QUERY, FORBIDDEN, UNAUTHORIZED } from '../../api/accessControl'
import { DATABASE_BACKENDS } from '../support/databases'
import { waitUntil } from '../support/waitUntil'
import { createApiKey } from '../../api/keys'
import { NO_SIGNING_KEYS } from '../../api/routes/signingKeyRoutes'
import { everyRowAsJson, probeTarget, tableRowCounts, tenantPath, type ProbeResult, type ProbeTarget } from './probeHarness'

describe.each(DATABASE_BACKENDS)('bad input against the HTTP API on $backend', ({ open }) => {
  let target: ProbeTarget
  beforeAll(async () => {
    target = await probeTarget(await open())
  })
  afterAll(async () => {
    await target?.close()
  })

  const asAcme = (url: string) => target.probe({ url, key: target.keys.acme.key })

  /** The probe got `status`, wrote nothing, and the access log gained exactly its one row, under acme's key. */
  function expectAnsweredToAcme(result: ProbeResult, status: number): void {
    expect(result.response.statusCode).toBe(status)
    expect(result.changedTables).toEqual({})
    expect(result.logged.map((entry) => [entry.keyId, entry.status])).toEqual([[target.keys.acme.id, status]])
  }

  /**
   * The probe, sent without a valid key, got `status` and wrote nothing but its refusal: the per-address, per-minute
   * count in api_access_refusals (one row more at most: the first of its kind this minute) and at most one access-log row.
   */
  function expectAnsweredAnonymously(result: ProbeResult, status: number): void {
    expect(result.response.statusCode).toBe(status)
    const { api_access_refusals: refusals, ...others } = result.changedTables
    expect(others).toEqual({})
    if (refusals) expect(refusals[1] - refusals[0]).toBe(1)
    expect(result.logged.length).toBeLessThanOrEqual(1)
    for (const entry of result.logged) expect([entry.keyId, entry.status]).toEqual([null, status])
  }

  /** The one 403, byte for byte. */
  function expectForbidden(result: ProbeResult): void {
    expectAnsweredToAcme(result, 403)
    expect(result.response.body).toBe(JSON.stringify(FORBIDDEN))
  }

  /** A 400 naming `parameter`, in one line. */
  function expectBadParameter(result: ProbeResult, parameter: string): void {
    expectAnsweredToAcme(result, 400)
    expect(result.response.json()).toEqual({ error: 'Bad Request', message: expect.stringMatching(/^[^\n]+$/), parameter })
  }

  it('counts every table, so a write anywhere would show (the check every probe relies on)', async () => {
    const before = await tableRowCounts(target.database.pool)
    expect(Object.keys(before)).toEqual(expect.arrayContaining(['api_access_log', 'api_keys', 'audit_timeline', 'events', 'task_summary']))
    await createApiKey(target.database.pool, { role: 'tenant', tenantId: 'globex', label: 'harness check' })
    const after = await tableRowCounts(target.database.pool)
    expect(after.api_keys).toBe(before.api_keys! + 1)
  })

  it('answers case and Unicode variants of the key own tenant ID with the one 403, as for another or no tenant', async () => {
    const variants = ['ACME', encodeURIComponent('acmé'), encodeURIComponent('ａｃｍｅ'), encodeURIComponent('acme\u200b'), 'globex', 'nosuchtenant']
    for (const tenant of variants) expectForbidden(await asAcme(tenantPath(tenant, 'audit')))
  })

  it('refuses %2F.. and ..%2F path tricks in the tenant ID with the 403 and in the task ID with a 400', async () => {
    for (const tenant of ['acme%2F..%2Fglobex', '..%2Fglobex', '%2F..%2Facme']) expectForbidden(await asAcme(tenantPath(tenant, 'audit')))
    expectForbidden(await asAcme(tenantPath('acme', '%2F..', 'audit')))
    expectForbidden(await asAcme(tenantPath('acme', '..%2Faudit')))
    for (const task of ['%2F..', '..%2Ftask-ok', '..%2F..%2Fglobex%2Ftasks%2Ftask-g']) expectBadParameter(await asAcme(tenantPath('acme', 'tasks', task)), 'taskId')
  })

  it('refuses a NUL byte in the tenant ID (403), the task ID and a query parameter (400)', async () => {
    expectForbidden(await asAcme(tenantPath('acme%00', 'audit')))
    expectBadParameter(await asAcme(tenantPath('acme', 'tasks', 'task-ok%00')), 'taskId')
    expectBadParameter(await asAcme(`${tenantPath('acme', 'audit')}?taskId=task-ok%00`), 'taskId')
  })

  it('treats quotes and SQL in the path and the query as plain, invalid strings', async () => {
    expectForbidden(await asAcme(tenantPath(encodeURIComponent("acme' or '1'='1"), 'audit')))
    expectBadParameter(await asAcme(tenantPath('acme', 'tasks', encodeURIComponent("x'; drop table api_keys;--"))), 'taskId')
    expectBadParameter(await asAcme(`${tenantPath('acme', 'audit')}?taskId=${encodeURIComponent("x' or '1'='1")}`), 'taskId')
    expectBadParameter(await asAcme(`${tenantPath('acme', 'audit')}?eventType=${encodeURIComponent('";select pg_sleep(1)')}`), 'eventType')
    expectBadParameter(await asAcme(`${tenantPath('acme', 'tasks')}?status=${encodeURIComponent("completed'--")}`), 'status')
  })

  it('refuses a 1,000-character tenant ID with the 403 and a 1,000-character task ID with a 400', async () => {
    expectForbidden(await asAcme(tenantPath('a'.repeat(1_000), 'audit')))
    expectBadParameter(await asAcme(tenantPath('acme', 'tasks', 't'.repeat(1_000))), 'taskId')
    expectBadParameter(await asAcme(`${tenantPath('acme', 'audit')}?taskId=${'t'.repeat(1_000)}`), 'taskId')
  })

  it('answers a 16 KB URL with a 400 naming the path, never a 5xx', async () => {
    const result = await asAcme(tenantPath('acme', 'tasks', 't'.repeat(16_384)))
    expectBadParameter(result, 'path')
  })

  it('refuses a 16 KB URL over real HTTP with 431 before the application sees it, recording only the refusal', async () => {
    await target.app.listen({ host: '127.0.0.1', port: 0 })
    const { port } = target.app.server.address() as AddressInfo
    const pool = target.database.pool
    const refusals431 = async () => Number((await pool.query<{ n: string }>(`select coalesce(sum(count), 0) as n from api_access_refusals where status = 431`)).rows[0]!.n)
    const before = await tableRowCounts(pool)
    const refusedBefore = await refusals431()
    const response = await fetch(`http://127.0.0.1:${port}${tenantPath('acme', 'tasks', 't'.repeat(16_384))}`, { headers: { authorization: `Bearer ${target.keys.acme.key}` } })
    await response.arrayBuffer()
    expect(response.status).toBe(431)
    // Node refuses it before any route; the refusal is counted as the connection closes.
    await waitUntil('the 431 to be counted', async () => (await refusals431()) === refusedBefore + 1)
    const { api_access_refusals: _counted, api_access_log: logged, ...others } = await tableRowCounts(pool)
    const { api_access_refusals: _before, api_access_log: loggedBefore, ...othersBefore } = before
    expect(others).toEqual(othersBefore)
    expect(logged! - loggedBefore!).toBeLessThanOrEqual(1)
    const normal = await fetch(`http://127.0.0.1:${port}${tenantPath('acme', 'tasks')}`, { headers: { authorization: `Bearer ${target.keys.acme.key}` } })
    expect(normal.status).toBe(200)
    await waitUntil('the answered request to be logged', async () => (await tableRowCounts(pool)).api_access_log === logged! + 1)
  })

  it('refuses every analytics route to a tenant key with the 403', async () => {
    for (const route of ['failures', 'failures/tenants?step=synthesize', 'models', 'costs', 'tools']) expectForbidden(await asAcme(`/v1/analytics/${route}`))
  })

  it('refuses the lag and metrics routes to a tenant key with the 403, naming no tenant', async () => {
    for (const url of ['/v1/projections/lag', '/metrics']) {
      const result = await asAcme(url)
      expectForbidden(result)
      expect(result.response.body).not.toMatch(/globex|acme/)
    }
  })

  it('refuses an unknown query parameter with a 400 naming it, a tenantId parameter included', async () => {
    expectBadParameter(await asAcme(`${tenantPath('acme', 'audit')}?bogus=1`), 'bogus')
    expectBadParameter(await asAcme(`${tenantPath('acme', 'tasks')}?tenantId=globex`), 'tenantId')
    expectBadParameter(await asAcme(`${tenantPath('acme', 'summary')}?x=${'y'.repeat(4_096)}`), 'x')
  })

  it('answers a cursor past the end with no entries and a null nextAfter', async () => {
    const result = await asAcme(`${tenantPath('acme', 'audit')}?after=999999999999`)
    expectAnsweredToAcme(result, 200)
    expect(result.response.json()).toEqual({ entries: [], nextAfter: null })
  })

  it('refuses huge, negative and exponent limits with a 400 naming limit', async () => {
    for (const limit of ['1000000', '-1', '1e3', '1001', '0']) expectBadParameter(await asAcme(`${tenantPath('acme', 'audit')}?limit=${limit}`), 'limit')
  })

  it("refuses another tenant's routes with the 403, the same body as for a tenant that does not exist", async () => {
    const routes = (tenant: string) => [tenantPath(tenant, 'audit'), tenantPath(tenant, 'tasks'), tenantPath(tenant, 'tasks', 'task-g'), tenantPath(tenant, 'summary'), tenantPath(tenant, 'dead-tasks'), tenantPath(tenant, 'export')]
    const bodies = new Set<string>()
    for (const url of [...routes('globex'), ...routes('nosuchtenant')]) {
      const result = await asAcme(url)
      expectForbidden(result)
      bodies.add(result.response.body)
    }
    expect(bodies.size).toBe(1)
  })

  it('publishes an OpenAPI document that names no tenant and no key', async () => {
    const result = await target.probe({ url: '/openapi.json' })
    expectAnsweredAnonymously(result, 200)
    expect(result.logged).toEqual([])
    for (const secret of ['acme', 'globex', target.keys.acme.key.slice(0, 8), target.keys.globex.key.slice(0, 8)]) expect(result.response.body).not.toContain(secret)
  })

  it('answers the public signing keys route anonymously, writing and logging nothing, and refuses a parameter it does not define', async () => {
    const unconfigured = await target.probe({ url: '/v1/keys/signing' })
    expectAnsweredAnonymously(unconfigured, 503)
    expect(unconfigured.logged).toEqual([])
    expect(unconfigured.response.json()).toEqual(NO_SIGNING_KEYS)
    const withParameter = await target.probe({ url: '/v1/keys/signing?kid=x' })
    expectAnsweredAnonymously(withParameter, 400)
    expect(withParameter.response.json()).toMatchObject({ error: 'Bad Request', parameter: 'kid' })
  })

  it('refuses a key in the query string with the 400 and stores its text nowhere', async () => {
    const key = target.keys.acme.key
    for (const name of ['access_token', 'api_key']) {
      const result = await target.probe({ url: `${tenantPath('acme', 'audit')}?${name}=${key}` })
      expectAnsweredAnonymously(result, 400)
      expect(result.response.json()).toEqual(CREDENTIAL_IN_QUERY)
      expect(result.response.body).not.toContain(key)
    }
    const stored = await everyRowAsJson(target.database.pool)
    expect(stored.some((row) => row.includes('"query"'))).toBe(true)
    expect(stored.filter((row) => row.includes(key))).toEqual([])
  })

  it('refuses a key in the wrong header form with the 401', async () => {
    const key = target.keys.acme.key
    for (const authorization of [`Basic ${key}`, `Basic ${Buffer.from(`acme:${key}`).toString('base64')}`, `Bearer Bearer ${key}`, `Bearer ${key} Bearer ${key}`, `Bearer ${key},Bearer ${key}`, key]) {
      const result = await target.probe({ url: tenantPath('acme', 'audit'), headers: { authorization } })
      expectAnsweredAnonymously(result, 401)
      expect(result.response.body).toBe(JSON.stringify(UNAUTHORIZED))
    }
  })

  it('refuses an impossible date on the audit route with a 400 naming from', async () => {
    for (const from of ['2026-02-31', '2026-13-01', '2026-02-03T24:00:00Z']) expectBadParameter(await asAcme(`${tenantPath('acme', 'audit')}?from=${from}`), 'from')
  })
})
