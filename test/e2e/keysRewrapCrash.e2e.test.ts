import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../api/keys'
import type { Database } from '../../historian/adapters/postgres/database'
import { generateKek, KekRing } from '../../historian/keys/keyEncryptionKeys'
import { PostgresKeyStore } from '../../historian/keys/postgresKeyStore'
import { freshPostgresDatabase } from '../support/databases'
import { killCliBlockedOnLock } from '../support/killBlockedCli'
import { operatorKeyEnv } from '../support/operatorKey'
import { runAnnalist } from '../support/runCli'

const TENANTS = 30
const BATCH = 5

const ring = (versions: Record<number, string>) => KekRing.fromText(Object.entries(versions).map(([version, hex]) => `${version}:${hex}`).join(','))

/**
 * `annalist keys rewrap` SIGKILLed part way: the test holds a row lock on the 15th tenant key (in rewrap's order), so
 * the first two batches of five commit and the third waits; the process (and its waiting server backend) is killed
 * there, and a rerun finishes the job: every key under the new version, the old version retired, every data key the same.
 */
describe('annalist keys rewrap killed part way, then run again', () => {
  let database: Database & { url: string }
  let operator: { ANNALIST_API_KEY: string }
  const v1 = generateKek()
  const v2 = generateKek()
  const original = new Map<string, Buffer>()
  const versionCounts = async () =>
    Object.fromEntries((await database.pool.query<{ kek_version: number; n: number }>('select kek_version, count(*)::int as n from tenant_keys group by kek_version')).rows.map((row) => [row.kek_version, row.n]))

  beforeAll(async () => {
    database = await freshPostgresDatabase()
    operator = await operatorKeyEnv(database.pool)
    const keys = new PostgresKeyStore(database.pool, { kek: ring({ 1: v1 }) })
    for (let index = 0; index < TENANTS; index += 1) {
      const key = await keys.dataKeyFor(`tenant_${index}`, 'task-1')
      original.set(key.keyId, key.key)
    }
  })
  afterAll(async () => {
    await database?.close()
  })

  it('refuses a missing or wrong KEK, a missing API key and a key without keys.manage in one line, changing nothing; a scoped operator rotates its own tenant', async () => {
    const before = await versionCounts()
    const missing = await runAnnalist(['keys', 'rewrap'], { DATABASE_URL: database.url, ...operator })
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/^annalist: ANNALIST_KEK: not set; /)
    expect(missing.stderr.trim().split('\n')).toHaveLength(1)
    const wrong = await runAnnalist(['keys', 'rewrap'], { DATABASE_URL: database.url, ANNALIST_KEK: `1:${generateKek()},2:${v2}`, ...operator })
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/^annalist: ANNALIST_KEK: version 1 is not the key this database's keys were wrapped with/)
    const noCaller = await runAnnalist(['keys', 'rotate', '--tenant', 'tenant_0'], { DATABASE_URL: database.url, ANNALIST_KEK: v1 })
    expect(noCaller.stderr).toMatch(/^annalist: ANNALIST_API_KEY: not set; this command needs an API key with the permission keys.manage/)
    const scoped = { ANNALIST_API_KEY: (await createApiKey(database.pool, { role: 'operator', tenantId: 'tenant_1' })).key }
    const tenantKey = { ANNALIST_API_KEY: (await createApiKey(database.pool, { role: 'tenant', tenantId: 'tenant_1' })).key }
    const asScoped = (args: string[], caller: { ANNALIST_API_KEY: string }) => runAnnalist(args, { DATABASE_URL: database.url, ANNALIST_KEK: v1, ...caller })
    expect((await asScoped(['keys', 'rotate', '--tenant', 'tenant_2'], scoped)).stderr).toMatch(/^annalist: API key .* \(operator of tenant tenant_1\) may not keys.manage for tenant "tenant_2"/)
    expect((await asScoped(['keys', 'rewrap'], scoped)).stderr).toMatch(/^annalist: API key .* \(operator of tenant tenant_1\) may not keys.manage\s/)
    expect((await asScoped(['keys', 'rotate', '--tenant', 'tenant_1'], tenantKey)).stderr).toMatch(/^annalist: API key .* \(tenant tenant_1\) may not keys.manage/)
    expect(await versionCounts()).toEqual(before)
    expect((await database.pool.query('select version from key_encryption_keys')).rows).toEqual([{ version: 1 }])
    const own = await asScoped(['keys', 'rotate', '--tenant', 'tenant_1'], scoped)
    expect(own.stdout).toMatch(/^tenant tenant_1: new tenant key /)
    expect(await versionCounts()).toEqual({ 1: TENANTS + 1 })
  })

  it('leaves the committed batches moved and the rest untouched; the rerun moves the rest and retires version 1', async () => {
    const env = { DATABASE_URL: database.url, ANNALIST_KEK: `1:${v1},2:${v2}`, ...operator }
    const order = await database.pool.query<{ key_id: string }>('select key_id from tenant_keys order by key_id')
    const blocker = await database.pool.connect()
    try {
      await blocker.query('begin')
      await blocker.query('select 1 from tenant_keys where key_id = $1 for update', [order.rows[BATCH * 3 - 1]!.key_id])
      await killCliBlockedOnLock(database.pool, ['keys', 'rewrap', '--batch-size', String(BATCH)], env)
    } finally {
      await blocker.query('rollback')
      blocker.release()
    }
    expect(await versionCounts()).toEqual({ 1: TENANTS + 1 - 2 * BATCH, 2: 2 * BATCH })
    expect((await database.pool.query('select version, retired_at from key_encryption_keys where version = 1')).rows[0].retired_at).toBeNull()

    const rerun = await runAnnalist(['keys', 'rewrap', '--batch-size', String(BATCH)], env)
    expect(rerun.stderr).not.toMatch(/annalist:/)
    expect(rerun.code).toBe(0)
    expect(rerun.stdout.trim()).toBe(`every tenant key is wrapped by KEK version 2 (${TENANTS + 1 - 2 * BATCH} rewrapped now); KEK version(s) 1 retired: remove them from ANNALIST_KEK and destroy them`)
    expect(await versionCounts()).toEqual({ 2: TENANTS + 1 })
    expect((await database.pool.query('select version, retired_at is not null as retired from key_encryption_keys order by version')).rows).toEqual([
      { version: 1, retired: true },
      { version: 2, retired: false },
    ])
    const newKekOnly = new PostgresKeyStore(database.pool, { kek: ring({ 2: v2 }) })
    for (const [keyId, key] of original) expect((await newKekOnly.dataKeyById(keyId)).key.equals(key)).toBe(true)

    const again = await runAnnalist(['keys', 'rewrap'], { ...env, ANNALIST_KEK: `2:${v2}` })
    expect(again.stdout).toContain('(0 rewrapped now)')
    const rotated = await runAnnalist(['keys', 'rotate', '--tenant', 'tenant_0'], { ...env, ANNALIST_KEK: `2:${v2}` })
    expect(rotated.stderr).not.toMatch(/annalist:/)
    expect(rotated.stdout).toMatch(/^tenant tenant_0: new tenant key [0-9a-f-]{36} replaces [0-9a-f-]{36} for new tasks/)
    expect((await database.pool.query(`select count(*)::int as n from tenant_keys where tenant_id = 'tenant_0'`)).rows[0].n).toBe(2)
  })
})
