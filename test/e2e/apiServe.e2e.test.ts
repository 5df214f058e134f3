import type { ChildProcess } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { FORBIDDEN, UNAUTHORIZED } from '../../api/accessControl'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { verifyExport } from '../../projections/export/tenantExport'
import { API_SEED, seedApiTenants } from '../support/apiSeed'
import { freshPostgresDatabase } from '../support/databases'
import { runAnnalist } from '../support/runCli'
import { startServe } from '../support/serveProcess'
import { waitUntil } from '../support/waitUntil'


/** `annalist serve` as an operator runs it: keys made with `annalist api-keys`, queried over real HTTP with fetch. */
describe('annalist serve and api-keys', () => {
  const integrityKey = generateIntegrityKey()
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>
  let server: ChildProcess | undefined
  let baseUrl: string
  let operator: { key: string; id: string }
  const env = () => ({ DATABASE_URL: database.url, ANNALIST_INTEGRITY_KEY: integrityKey, ANNALIST_API_KEY: operator.key })

  async function createKey(args: string[]): Promise<{ key: string; id: string }> {
    const run = await runAnnalist(['api-keys', 'create', ...args], env())
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toMatch(/shown only now: it is not stored/)
    return { key: run.stdout.trim(), id: /ID ([0-9a-f-]{36})/.exec(run.stderr)![1]! }
  }

  beforeAll(async () => {
    database = await freshPostgresDatabase()
    const store = new PostgresEventStore(database)
    await seedApiTenants({ historian: new Historian(store, { keyRing: TenantKeyRing.fromText(integrityKey) }), store, pool: database.pool })
  })

  afterAll(async () => {
    server?.kill('SIGKILL')
    await database?.close()
  })

  it('serves the API until SIGTERM; tenant keys see only their tenant; operators redrive and revoke; revoked keys stop working', async () => {
    // Bootstrap: the first global operator key needs no key.
    const first = await runAnnalist(['api-keys', 'create', '--operator', '--label', 'root'], { DATABASE_URL: database.url })
    expect(first.code, first.stderr).toBe(0)
    expect(first.stderr).toMatch(/^created a global operator key, ID [0-9a-f-]{36}$/m)
    operator = { key: first.stdout.trim(), id: /ID ([0-9a-f-]{36})/.exec(first.stderr)![1]! }
    const acme = await createKey(['--tenant', 'acme', '--label', 'acme auditors'])
    const analyst = await createKey(['--analyst'])
    expect(acme.key).toMatch(/^[A-Za-z0-9_-]{43}$/)

    const listed = await runAnnalist(['api-keys', 'list', '--format', 'json'], env())
    expect(listed.code, listed.stderr).toBe(0)
    expect(listed.stdout).not.toContain(acme.key)
    expect(JSON.parse(listed.stdout)).toEqual([
      expect.objectContaining({ keyId: operator.id, role: 'operator', tenantId: null, canApprove: false, label: 'root' }),
      expect.objectContaining({ keyId: acme.id, role: 'tenant', tenantId: 'acme', label: 'acme auditors', prefix: acme.key.slice(0, 8), revokedAt: null }),
      expect.objectContaining({ keyId: analyst.id, role: 'analyst', tenantId: null }),
    ])
    const both = await runAnnalist(['api-keys', 'create', '--tenant', 'acme', '--analyst'], env())
    expect(both.code).toBe(1)
    expect(both.stderr).toMatch(/^annalist: cannot create API key: an analyst key reads every tenant; give no tenant ID/)

    // An access recorded 40 days ago: serve removes its client address when it starts (docs/api.md, "The access log").
    const { rows: oldAccess } = await database.pool.query<{ id: string }>(
      `insert into api_access_log (at, method, route, status, client_address) values (now() - interval '40 days', 'GET', '/v1/x', 401, '198.51.100.40') returning id`,
    )

    const { ANNALIST_API_KEY: _operatorKey, ...serveEnv } = env()
    const serve = await startServe({ ...process.env, ...serveEnv, TEMPORAL_ADDRESS: inject('temporalAddress') })
    const { child } = serve
    server = child
    baseUrl = serve.baseUrl
    await waitUntil('serve to remove the old client address', async () => {
      const { rows } = await database.pool.query<{ client_address: string | null }>('select client_address from api_access_log where id = $1', [oldAccess[0]!.id])
      return rows[0]?.client_address === null
    })

    const get = (path: string, key?: string) => fetch(`${baseUrl}${path}`, { headers: key ? { authorization: `Bearer ${key}` } : {} })
    const post = (path: string, key: string) => fetch(`${baseUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}` } })

    expect(await (await get('/healthz')).json()).toEqual({ status: 'ok' })
    const unauthorized = await get('/v2/tenants/acme/audit')
    expect(unauthorized.status).toBe(401)
    expect(await unauthorized.json()).toEqual(UNAUTHORIZED)

    const own = await get('/v2/tenants/acme/audit?limit=1000', acme.key)
    expect(own.status).toBe(200)
    const page = (await own.json()) as { entries: { tenantId: string }[]; nextAfter: string | null }
    expect(page.entries).toHaveLength(API_SEED.acme.events)
    expect(page.nextAfter).toBeNull()

    for (const path of ['/v2/tenants/globex/audit', '/v2/tenants/nobody/audit', '/v2/tenants/acme%2F..%2Fglobex/audit', '/v1/analytics/failures']) {
      const refused = await get(path, acme.key)
      expect(refused.status, path).toBe(403)
      expect(await refused.text(), path).toBe(JSON.stringify(FORBIDDEN))
    }

    const exported = await get('/v1/tenants/globex/export', analyst.key)
    expect(exported.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8')
    expect(verifyExport(await exported.text(), 'jsonl', TenantKeyRing.fromText(integrityKey))).toMatchObject({ ok: true, tenantId: 'globex' })

    // Redrive: a tenant key may not; an operator's request reaches the redrive (over the server's Temporal connection),
    // which refuses a task that failed without being dead-lettered.
    const redrive = `/v1/tenants/acme/tasks/${API_SEED.acme.failed}/redrive`
    expect(await (await post(redrive, acme.key)).text()).toBe(JSON.stringify(FORBIDDEN))
    const conflict = await post(redrive, operator.key)
    expect(conflict.status).toBe(409)
    expect(await conflict.json()).toMatchObject({ error: 'Conflict', message: expect.stringMatching(new RegExp(`^cannot redrive acme/${API_SEED.acme.failed}: `)) })
    const globexKey = await createKey(['--tenant', 'globex'])
    expect((await post(`/v1/api-keys/${globexKey.id}/revoke`, operator.key)).status).toBe(200)

    const revoke = await runAnnalist(['api-keys', 'revoke', acme.id], env())
    expect(revoke.code, revoke.stderr).toBe(0)
    expect(revoke.stdout).toMatch(new RegExp(`API key ${acme.id} revoked`))
    expect((await get('/v2/tenants/acme/audit', acme.key)).status).toBe(401)

    const { rows } = await database.pool.query<{ key_id: string | null; requested_tenant: string; status: number }>(
      `select key_id, requested_tenant, status from api_access_log where id > $1 order by id`,
      [oldAccess[0]!.id],
    )
    expect(rows.map((row) => [row.key_id, row.requested_tenant, row.status])).toEqual([
      [null, 'acme', 401],
      [acme.id, 'acme', 200],
      [acme.id, 'globex', 403],
      [acme.id, 'nobody', 403],
      [acme.id, 'acme/../globex', 403],
      [acme.id, null, 403],
      [analyst.id, 'globex', 200],
      [acme.id, 'acme', 403],
      [operator.id, 'acme', 409],
      [operator.id, null, 200],
      [null, 'acme', 401],
    ])

    child.kill('SIGTERM')
    const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (exitCode) => resolve(exitCode))))
    expect(code).toBe(0)
    expect(serve.stderr()).toMatch(/annalist API stopping/)
  }, 90_000)
})
