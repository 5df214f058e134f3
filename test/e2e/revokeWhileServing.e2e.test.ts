import type { ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { UNAUTHORIZED } from '../../api/accessControl'
import { generateIntegrityKey } from '../../historian/integrity/tenantKeyRing'
import { runAnnalist } from '../support/runCli'
import { startServe } from '../support/serveProcess'

/**
 * On the embedded default one process holds the PGlite data directory, so while `annalist serve` runs, `annalist
 * api-keys revoke` cannot open it: an operator revokes through the running server's API, and the key stops working on
 * that server at once.
 */
describe('revoking a key while annalist serve holds the embedded database', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'annalist-revoke-'))
  const base = { ANNALIST_DATA_DIR: dataDir, ANNALIST_INTEGRITY_KEY: generateIntegrityKey() }
  let server: ChildProcess | undefined

  afterAll(() => {
    server?.kill('SIGKILL')
  })

  it('revokes a tenant key through POST /v1/api-keys/:keyId/revoke, and the CLI points there instead of at the lock', async () => {
    const first = await runAnnalist(['api-keys', 'create', '--operator', '--label', 'root'], base)
    expect(first.code, first.stderr).toBe(0)
    const operatorKey = first.stdout.trim()
    const withOperator = { ...base, ANNALIST_API_KEY: operatorKey }
    const tenant = await runAnnalist(['api-keys', 'create', '--tenant', 'acme'], withOperator)
    expect(tenant.code, tenant.stderr).toBe(0)
    const acme = { key: tenant.stdout.trim(), id: /ID ([0-9a-f-]{36})/.exec(tenant.stderr)![1]! }

    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(ANNALIST_|DATABASE_URL|ESDB_|TEMPORAL_)/.test(key)))
    const { child, baseUrl } = await startServe({ ...env, ...base }, { timeoutMs: 60_000 })
    server = child
    const tasksOfAcme = () => fetch(`${baseUrl}/v2/tenants/acme/tasks`, { headers: { authorization: `Bearer ${acme.key}` } })
    expect((await tasksOfAcme()).status).toBe(200)

    const refused = await runAnnalist(['api-keys', 'revoke', acme.id], withOperator)
    expect(refused.code).toBe(1)
    expect(refused.stderr.trim().split('\n')).toEqual([
      `annalist: cannot revoke API key ${acme.id} here: the embedded database is in use by process ${child.pid} (a running annalist serve?); ` +
        `revoke it through that server's API with an operator key: POST /v1/api-keys/${acme.id}/revoke  (run with --verbose for details)`,
    ])

    const revoked = await fetch(`${baseUrl}/v1/api-keys/${acme.id}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${operatorKey}` } })
    expect(revoked.status).toBe(200)
    expect(await revoked.json()).toEqual({ keyId: acme.id, revokedAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/) })
    const afterwards = await tasksOfAcme()
    expect(afterwards.status).toBe(401)
    expect(await afterwards.json()).toEqual(UNAUTHORIZED)

    child.kill('SIGTERM')
    const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (exitCode) => resolve(exitCode))))
    expect(code).toBe(0)
    const listed = await runAnnalist(['api-keys', 'list', '--format', 'json'], withOperator)
    expect(JSON.parse(listed.stdout)).toContainEqual(expect.objectContaining({ keyId: acme.id, revokedAt: expect.any(String) }))
  }, 120_000)
})
