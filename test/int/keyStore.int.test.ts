import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Database } from '../../historian/adapters/postgres/database'
import { decryptContent, encryptContent } from '../../historian/keys/contentCipher'
import { generateKek, KekRing } from '../../historian/keys/keyEncryptionKeys'
import { KekError, KeyDestroyedError, UnknownKeyError, WrappedKeyTamperedError } from '../../historian/keys/keyStore'
import { PostgresKeyStore } from '../../historian/keys/postgresKeyStore'
import { DATABASE_BACKENDS } from '../support/databases'

const KEY_TABLES = ['key_encryption_keys', 'tenant_keys', 'task_data_keys', 'destroyed_key_scopes', 'destroyed_keys'] as const

const ring = (versions: Record<number, string>) => new KekRing(new Map(Object.entries(versions).map(([version, hex]) => [Number(version), Buffer.from(hex, 'hex')])))

async function rowCounts(database: Database): Promise<Record<string, number>> {
  const counts: Record<string, number> = {}
  for (const table of KEY_TABLES) counts[table] = Number((await database.pool.query<{ n: string }>(`select count(*) as n from ${table}`)).rows[0]!.n)
  return counts
}

/** Every row of the key tables, as a backup would hold them. */
async function backupOf(database: Database): Promise<Record<string, Record<string, unknown>[]>> {
  const backup: Record<string, Record<string, unknown>[]> = {}
  for (const table of KEY_TABLES) backup[table] = (await database.pool.query(`select * from ${table}`)).rows
  return backup
}

async function restore(database: Database, backup: Record<string, Record<string, unknown>[]>): Promise<void> {
  for (const table of KEY_TABLES) {
    for (const row of backup[table]!) {
      const columns = Object.keys(row)
      await database.pool.query(`insert into ${table} (${columns.join(', ')}) values (${columns.map((_, index) => `$${index + 1}`).join(', ')})`, Object.values(row))
    }
  }
}

describe.each(DATABASE_BACKENDS)('the PostgreSQL key store on $backend', ({ open }) => {
  let database: Database
  const v1 = generateKek()
  const v2 = generateKek()
  const storeWith = (kek: KekRing, options: { now?: () => number; cacheTtlMs?: number } = {}) => new PostgresKeyStore(database.pool, { kek, ...options })

  beforeEach(async () => {
    database = await open()
  })
  afterEach(async () => {
    await database.close()
  })

  it('gives a task one stable 32-byte data key, the same by ID and from another process, and other tasks other keys', async () => {
    const keys = storeWith(ring({ 1: v1 }))
    const first = await keys.dataKeyFor('acme', 'task-1')
    expect(first.key).toHaveLength(32)
    expect(first).toMatchObject({ tenantId: 'acme', taskId: 'task-1' })
    const again = await storeWith(ring({ 1: v1 }), { cacheTtlMs: 0 }).dataKeyFor('acme', 'task-1')
    expect(again.keyId).toBe(first.keyId)
    expect(again.key.equals(first.key)).toBe(true)
    expect((await storeWith(ring({ 1: v1 })).dataKeyById(first.keyId)).key.equals(first.key)).toBe(true)
    const other = await keys.dataKeyFor('acme', 'task-2')
    expect(other.keyId).not.toBe(first.keyId)
    expect(other.key.equals(first.key)).toBe(false)
    expect(await rowCounts(database)).toMatchObject({ key_encryption_keys: 1, tenant_keys: 1, task_data_keys: 2 })
    const stored = await database.pool.query<{ wrapped: Buffer }>('select wrapped from task_data_keys union all select wrapped from tenant_keys')
    for (const row of stored.rows) {
      expect(row.wrapped.includes(first.key)).toBe(false)
      expect(row.wrapped.includes(other.key)).toBe(false)
    }
  })

  it('hands many concurrent callers in several processes one key for a task, and one key for its tenant', async () => {
    const processes = [0, 1, 2].map(() => storeWith(ring({ 1: v1 }), { cacheTtlMs: 0 }))
    const keys = await Promise.all(Array.from({ length: 24 }, (_, index) => processes[index % processes.length]!.dataKeyFor('acme', index % 2 === 0 ? 'task-a' : 'task-b')))
    const byTask = (taskId: string) => new Set(keys.filter((key) => key.taskId === taskId).map((key) => `${key.keyId}:${key.key.toString('hex')}`))
    expect(byTask('task-a').size).toBe(1)
    expect(byTask('task-b').size).toBe(1)
    expect(await rowCounts(database)).toMatchObject({ tenant_keys: 1, task_data_keys: 2 })
  })

  it('refuses a wrapped key whose bytes were altered or that was moved to another tenant or task', async () => {
    const keys = storeWith(ring({ 1: v1 }))
    const acme = await keys.dataKeyFor('acme', 'task-1')
    const acmeSecond = await keys.dataKeyFor('acme', 'task-2')
    const globex = await keys.dataKeyFor('globex', 'task-1')
    const fresh = () => storeWith(ring({ 1: v1 }), { cacheTtlMs: 0 })
    // Another tenant's wrapped tenant key copied into globex's row: it does not unwrap there.
    await database.pool.query(
      `update tenant_keys set nonce = acme.nonce, wrapped = acme.wrapped from (select nonce, wrapped from tenant_keys where tenant_id = 'acme') acme where tenant_keys.tenant_id = 'globex'`,
    )
    await expect(fresh().dataKeyById(globex.keyId)).rejects.toThrow(WrappedKeyTamperedError)
    // A data key's bytes copied onto another task's row of the same tenant: bound to its own task and ID, it fails.
    await database.pool.query(
      `update task_data_keys set nonce = one.nonce, wrapped = one.wrapped from (select nonce, wrapped from task_data_keys where key_id = $1) one where key_id = $2`,
      [acme.keyId, acmeSecond.keyId],
    )
    await expect(fresh().dataKeyFor('acme', 'task-2')).rejects.toThrow(WrappedKeyTamperedError)
    // One flipped bit in a wrapped data key.
    await database.pool.query(`update task_data_keys set wrapped = set_byte(wrapped, 0, get_byte(wrapped, 0) # 1) where key_id = $1`, [acme.keyId])
    await expect(fresh().dataKeyById(acme.keyId)).rejects.toThrow(/^wrapped key [0-9a-f-]+ does not unwrap: its row was altered or moved/)
  })

  it('refuses a wrong or missing KEK in one line naming the variable, and writes nothing', async () => {
    const created = await storeWith(ring({ 1: v1 })).dataKeyFor('acme', 'task-1')
    const before = await rowCounts(database)
    const wrong = storeWith(ring({ 1: generateKek() }))
    const refusal = (await wrong.dataKeyById(created.keyId).then(() => undefined, (error: unknown) => error)) as Error
    expect(refusal).toBeInstanceOf(KekError)
    expect(refusal.message).toBe("ANNALIST_KEK: version 1 is not the key this database's keys were wrapped with (a wrong key?)")
    await expect(wrong.dataKeyFor('acme', 'task-2')).rejects.toThrow(KekError)
    await expect(wrong.dataKeyFor('initech', 'task-1')).rejects.toThrow(KekError)
    await expect(wrong.rotateTenantKey('acme')).rejects.toThrow(KekError)
    const fromFile = new PostgresKeyStore(database.pool, { kek: new KekRing(new Map([[2, randomBytes(32)]]), 'ANNALIST_KEK_FILE') })
    await expect(fromFile.dataKeyById(created.keyId)).rejects.toThrow(/^ANNALIST_KEK_FILE: has no version 1, which wraps a key of tenant "acme"/)
    expect(await rowCounts(database)).toEqual(before)
  })

  it('rotates a tenant key: old content still decrypts, new tasks get data keys under the new tenant key', async () => {
    const keys = storeWith(ring({ 1: v1 }))
    const oldKey = await keys.dataKeyFor('acme', 'task-old')
    const content = encryptContent(oldKey, Buffer.from('the old answer'), 'payload:1')
    expect(content.keyId).toBe(oldKey.keyId)
    const rotated = await keys.rotateTenantKey('acme')
    expect(rotated.previousKeyId).not.toBeNull()
    const newKey = await keys.dataKeyFor('acme', 'task-new')
    const wrappedBy = async (keyId: string) => (await database.pool.query<{ tenant_key_id: string }>('select tenant_key_id from task_data_keys where key_id = $1', [keyId])).rows[0]!.tenant_key_id
    expect(await wrappedBy(oldKey.keyId)).toBe(rotated.previousKeyId)
    expect(await wrappedBy(newKey.keyId)).toBe(rotated.keyId)
    const elsewhere = storeWith(ring({ 1: v1 }), { cacheTtlMs: 0 })
    expect((await elsewhere.dataKeyFor('acme', 'task-old')).keyId).toBe(oldKey.keyId)
    expect((await decryptContent(elsewhere, content, { tenantId: 'acme', taskId: 'task-old', purpose: 'payload:1' })).toString()).toBe('the old answer')
    await expect(decryptContent(elsewhere, content, { tenantId: 'acme', taskId: 'task-new', purpose: 'payload:1' })).rejects.toThrow(/belongs to another tenant or task/)
    expect((await database.pool.query('select count(*)::int as n from tenant_keys where tenant_id = $1 and is_current', ['acme'])).rows[0].n).toBe(1)
  })

  it('rewraps every tenant key under the new KEK version in batches and retires the old one: the new KEK alone unwraps everything', async () => {
    const before = storeWith(ring({ 1: v1 }))
    const original = new Map<string, Buffer>()
    for (const tenant of ['acme', 'globex', 'initech']) {
      for (const task of ['task-1', 'task-2']) {
        const key = await before.dataKeyFor(tenant, task)
        original.set(key.keyId, key.key)
      }
    }
    await before.rotateTenantKey('acme')
    const progress: number[] = []
    const result = await storeWith(ring({ 1: v1, 2: v2 })).rewrap({ batchSize: 2, onProgress: ({ rewrapped }) => progress.push(rewrapped) })
    expect(result).toEqual({ kekVersion: 2, rewrapped: 4, retiredVersions: [1] })
    expect(progress).toEqual([2, 4])
    const versions = await database.pool.query<{ kek_version: number }>('select distinct kek_version from tenant_keys')
    expect(versions.rows).toEqual([{ kek_version: 2 }])
    expect((await database.pool.query('select version, retired_at is not null as retired from key_encryption_keys order by version')).rows).toEqual([
      { version: 1, retired: true },
      { version: 2, retired: false },
    ])
    const after = storeWith(ring({ 2: v2 }))
    for (const [keyId, key] of original) expect((await after.dataKeyById(keyId)).key.equals(key)).toBe(true)
    expect(await storeWith(ring({ 2: v2 })).rewrap()).toEqual({ kekVersion: 2, rewrapped: 0, retiredVersions: [1] })
    await expect(storeWith(ring({ 1: v1 })).dataKeyFor('umbrella', 'task-1')).rejects.toThrow(/^ANNALIST_KEK: its newest version is 1, but version 2 is already in use here/)
    await expect(storeWith(ring({ 1: v1, 2: v2 })).dataKeyFor('umbrella', 'task-1')).resolves.toMatchObject({ tenantId: 'umbrella' })
  })

  it("destroys a task's keys: KeyDestroyedError, distinct from a key that never existed, and no new key for that task", async () => {
    const keys = storeWith(ring({ 1: v1 }))
    const doomed = await keys.dataKeyFor('acme', 'task-1')
    const kept = await keys.dataKeyFor('acme', 'task-2')
    const destruction = await keys.destroyTaskKeys('acme', 'task-1')
    expect(destruction).toEqual({ tenantId: 'acme', taskId: 'task-1', destroyedKeyIds: [doomed.keyId] })
    expect(await keys.destroyTaskKeys('acme', 'task-1')).toEqual(destruction)
    await expect(keys.dataKeyFor('acme', 'task-1')).rejects.toThrow(KeyDestroyedError)
    await expect(keys.dataKeyById(doomed.keyId)).rejects.toThrow(/^the keys of task "task-1" of tenant "acme" were destroyed at /)
    await expect(keys.dataKeyById('00000000-0000-4000-8000-000000000000')).rejects.toThrow(UnknownKeyError)
    await expect(keys.dataKeyById('not a key id')).rejects.toThrow(UnknownKeyError)
    expect((await keys.dataKeyFor('acme', 'task-2')).key.equals(kept.key)).toBe(true)
    await expect(storeWith(ring({ 1: v1 })).destroyTaskKeys('acme', 'never-started')).resolves.toMatchObject({ destroyedKeyIds: [] })
    await expect(keys.dataKeyFor('acme', 'never-started')).rejects.toThrow(KeyDestroyedError)
    expect((await database.pool.query('select count(*)::int as n from task_data_keys where task_id in ($1, $2)', ['task-1', 'never-started'])).rows[0].n).toBe(0)
  })

  it("destroys a tenant's keys: every task of it, and any future task, is refused; other tenants carry on", async () => {
    const keys = storeWith(ring({ 1: v1 }))
    const a = await keys.dataKeyFor('acme', 'task-1')
    await keys.rotateTenantKey('acme')
    const b = await keys.dataKeyFor('acme', 'task-2')
    const globex = await keys.dataKeyFor('globex', 'task-1')
    const destruction = await keys.destroyTenantKeys('acme')
    expect(destruction.destroyedKeyIds).toHaveLength(4)
    expect(destruction.destroyedKeyIds).toEqual(expect.arrayContaining([a.keyId, b.keyId]))
    expect(await rowCounts(database)).toMatchObject({ tenant_keys: 1, task_data_keys: 1, destroyed_keys: 4 })
    for (const taskId of ['task-1', 'task-2', 'task-3']) await expect(keys.dataKeyFor('acme', taskId)).rejects.toThrow(/^the keys of tenant "acme" were destroyed at /)
    await expect(keys.dataKeyById(b.keyId)).rejects.toThrow(KeyDestroyedError)
    await expect(keys.rotateTenantKey('acme')).rejects.toThrow(KeyDestroyedError)
    expect((await keys.dataKeyFor('globex', 'task-1')).key.equals(globex.key)).toBe(true)
    expect((await keys.destroyTenantKeys('acme')).destroyedKeyIds).toEqual(destruction.destroyedKeyIds)
  })

  it('forgets a key destroyed by another process once its cache lifetime has passed', async () => {
    let now = 1_000_000
    const worker = storeWith(ring({ 1: v1 }), { cacheTtlMs: 60_000, now: () => now })
    const key = await worker.dataKeyFor('acme', 'task-1')
    await storeWith(ring({ 1: v1 })).destroyTaskKeys('acme', 'task-1')
    now += 59_999
    expect((await worker.dataKeyFor('acme', 'task-1')).keyId).toBe(key.keyId) // still cached: the documented bound
    now += 1
    await expect(worker.dataKeyFor('acme', 'task-1')).rejects.toThrow(KeyDestroyedError)
    await expect(worker.dataKeyById(key.keyId)).rejects.toThrow(KeyDestroyedError)
  })

  it('leaves a backup from before a destruction useless once the keys are rewrapped under a new KEK and the old one is gone', async () => {
    const keys = storeWith(ring({ 1: v1 }))
    const doomedTask = await keys.dataKeyFor('acme', 'task-1')
    const doomedTenant = await keys.dataKeyFor('globex', 'task-1')
    const backup = await backupOf(database)
    await keys.destroyTaskKeys('acme', 'task-1')
    await keys.destroyTenantKeys('globex')
    await keys.dataKeyFor('initech', 'task-1')
    expect((await storeWith(ring({ 1: v1, 2: v2 })).rewrap()).retiredVersions).toEqual([1])

    const copy = await open()
    try {
      await restore(copy, backup)
      const withNewKek = new PostgresKeyStore(copy.pool, { kek: ring({ 2: v2 }) })
      await expect(withNewKek.dataKeyById(doomedTask.keyId)).rejects.toThrow(/^ANNALIST_KEK: has no version 1/)
      await expect(withNewKek.dataKeyById(doomedTenant.keyId)).rejects.toThrow(/^ANNALIST_KEK: has no version 1/)
      const newKekAsOld = new PostgresKeyStore(copy.pool, { kek: ring({ 1: v2 }) })
      await expect(newKekAsOld.dataKeyById(doomedTask.keyId)).rejects.toThrow(KekError)
      // Past the check value: with it replaced by one the new KEK wrote as version 1, the wrapped key itself refuses to open.
      await copy.pool.query('alter table tenant_keys drop constraint tenant_keys_kek_version_fkey')
      await copy.pool.query('delete from key_encryption_keys')
      await newKekAsOld.dataKeyFor('umbrella', 'task-1')
      await expect(newKekAsOld.dataKeyById(doomedTenant.keyId)).rejects.toThrow(WrappedKeyTamperedError)
    } finally {
      await copy.close()
    }
    const now = storeWith(ring({ 2: v2 }))
    await expect(now.dataKeyById(doomedTask.keyId)).rejects.toThrow(KeyDestroyedError)
    await expect(now.dataKeyById(doomedTenant.keyId)).rejects.toThrow(KeyDestroyedError)
  })
})
