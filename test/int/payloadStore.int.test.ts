import { createHash, randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Database } from '../../historian/adapters/postgres/database'
import { generateKek, KekRing } from '../../historian/keys/keyEncryptionKeys'
import { KeyDestroyedError } from '../../historian/keys/keyStore'
import { PostgresKeyStore } from '../../historian/keys/postgresKeyStore'
import { PayloadConflictError, UnknownPayloadError, type PayloadToPut } from '../../historian/payloads/payloadStore'
import { PostgresPayloadStore } from '../../historian/payloads/postgresPayloadStore'
import { payloadRef } from '../../historian/payloads/payloadKeys'
import { DATABASE_BACKENDS } from '../support/databases'
import { everyRowAsJson } from '../security/probeHarness'

const canary = () => `canary-${randomBytes(12).toString('hex')}`

describe.each(DATABASE_BACKENDS)('the PostgreSQL payload store on $backend', ({ open }) => {
  let database: Database
  let keys: PostgresKeyStore
  let payloads: PostgresPayloadStore
  const kek = () => new KekRing(new Map([[1, Buffer.from(kekHex, 'hex')]]))
  const kekHex = generateKek()
  /** A payload store over its own key store with no cache, as another process would have. */
  const anotherProcess = () => new PostgresPayloadStore(database.pool, new PostgresKeyStore(database.pool, { kek: kek(), cacheTtlMs: 0 }))
  const acme = { tenantId: 'acme', taskId: 'task-1' }
  const payload = (content: string, overrides: Partial<PayloadToPut> = {}): PayloadToPut => ({
    ...acme,
    purpose: 'task-input',
    content,
    classification: 'restricted',
    idempotencyKey: 'activity-1',
    ...overrides,
  })
  const payloadRows = async () => (await database.pool.query('select * from content_payloads order by ref')).rows

  /** Whether `secret` appears in any row of any public table, as text or as the hex of bytea. */
  async function storedAnywhere(secret: string): Promise<boolean> {
    const hex = Buffer.from(secret).toString('hex')
    return (await everyRowAsJson(database.pool)).some((row) => row.includes(secret) || row.includes(hex))
  }

  beforeEach(async () => {
    database = await open()
    keys = new PostgresKeyStore(database.pool, { kek: kek() })
    payloads = new PostgresPayloadStore(database.pool, keys)
  })
  afterEach(async () => {
    await database.close()
  })

  it('round-trips content, verifies its digest, and stores no plaintext, exact length or plain hash of it', async () => {
    const secret = canary()
    const ref = await payloads.put(payload(`the input holds ${secret}`))
    expect(ref.classification).toBe('restricted')
    expect(await payloads.get(ref.ref, acme)).toEqual({ status: 'present', content: `the input holds ${secret}` })
    expect(await payloads.verifyDigest(ref, `the input holds ${secret}`, acme)).toBe(true)
    expect(await payloads.verifyDigest(ref, 'something else', acme)).toBe(false)
    const [row] = await payloadRows()
    expect(row).toMatchObject({ ref: ref.ref, tenant_id: 'acme', task_id: 'task-1', purpose: 'task-input', digest: ref.digest, shredded_at: null })
    expect((row.ciphertext as Buffer).length).toBe(64 + 16)
    expect(Object.keys(row).some((column) => /length|size|plain/.test(column))).toBe(false)
    expect(await storedAnywhere(secret)).toBe(false)
    expect(await storedAnywhere(createHash('sha256').update(`the input holds ${secret}`).digest('hex'))).toBe(false)
  })

  it('returns the same ref for the same payload again and adds no row; other content under that key is refused and changes nothing', async () => {
    const first = await payloads.put(payload('answer: 42'))
    expect(await payloads.put(payload('answer: 42'))).toEqual(first)
    expect(await anotherProcess().put(payload('answer: 42'))).toEqual(first)
    const concurrent = await Promise.all([0, 1, 2, 3].map(() => anotherProcess().put(payload('answer: 42'))))
    expect(concurrent).toEqual([first, first, first, first])
    const before = await payloadRows()
    expect(before).toHaveLength(1)
    await expect(payloads.put(payload('answer: 43'))).rejects.toThrow(PayloadConflictError)
    await expect(payloads.put(payload('answer: 42', { classification: 'internal' }))).rejects.toThrow(PayloadConflictError)
    await expect(payloads.put(payload('answer: 43'))).rejects.toThrow(/^payload \S+ already holds other content, classification or purpose for this idempotency key; nothing was written$/)
    expect(await payloadRows()).toEqual(before)
    expect(await payloads.get(first.ref, acme)).toEqual({ status: 'present', content: 'answer: 42' })
    const other = await payloads.put(payload('answer: 43', { idempotencyKey: 'activity-2' }))
    expect(other.ref).not.toBe(first.ref)
    expect(await payloadRows()).toHaveLength(2)
  })

  it('reads as erased after the task keys are destroyed, refuses new writes for the task, and keeps the canary stored nowhere', async () => {
    const secret = canary()
    const ref = await payloads.put(payload(secret))
    const untouched = await payloads.put(payload('other task', { taskId: 'task-2' }))
    await keys.destroyTaskKeys('acme', 'task-1')
    const read = await payloads.get(ref.ref, acme)
    expect(read).toMatchObject({ status: 'erased', reason: 'keys-destroyed' })
    expect(await anotherProcess().get(ref.ref, acme)).toMatchObject({ status: 'erased', reason: 'keys-destroyed' })
    expect(await payloads.verifyDigest(ref, secret, acme)).toBe('erased')
    await expect(payloads.put(payload(secret))).rejects.toThrow(KeyDestroyedError)
    expect(await payloads.get(untouched.ref, { tenantId: 'acme', taskId: 'task-2' })).toEqual({ status: 'present', content: 'other task' })
    expect(await storedAnywhere(secret)).toBe(false)
  })

  it('reads as erased after the tenant keys are destroyed or the row was shredded', async () => {
    const shredded = await payloads.put(payload('to be shredded', { idempotencyKey: 'shred-me' }))
    await database.pool.query('update content_payloads set nonce = null, ciphertext = null, shredded_at = now() where ref = $1', [shredded.ref])
    expect(await payloads.get(shredded.ref, acme)).toMatchObject({ status: 'erased', reason: 'shredded' })
    const ref = await payloads.put(payload('tenant content'))
    await keys.destroyTenantKeys('acme')
    expect(await payloads.get(ref.ref, acme)).toMatchObject({ status: 'erased', reason: 'keys-destroyed' })
  })

  it("refuses another tenant's or task's expected context with the same error as an unknown ref", async () => {
    const ref = await payloads.put(payload('acme only'))
    const messageOf = async (read: Promise<unknown>) => {
      const error = await read.then(() => undefined, (thrown: unknown) => thrown)
      expect(error).toBeInstanceOf(UnknownPayloadError)
      return (error as Error).message
    }
    const asGlobex = await messageOf(payloads.get(ref.ref, { tenantId: 'globex', taskId: 'task-1' }))
    const asOtherTask = await messageOf(payloads.get(ref.ref, { tenantId: 'acme', taskId: 'task-2' }))
    const unknownRef = payloadRef({ ...(await keys.dataKeyFor('globex', 'task-1')), key: randomBytes(32) }, { tenantId: 'globex', taskId: 'task-1', purpose: 'task-input', idempotencyKey: 'x' })
    const unknown = await messageOf(payloads.get(unknownRef, { tenantId: 'globex', taskId: 'task-1' }))
    expect(asGlobex).toBe(asOtherTask)
    expect(asGlobex.replace(ref.ref, 'REF')).toBe(unknown.replace(unknownRef, 'REF'))
    expect(await messageOf(payloads.verifyDigest(ref, 'acme only', { tenantId: 'globex', taskId: 'task-1' }))).toBe(asGlobex)
    await messageOf(payloads.get('not-a-ref', acme))
  })

  it('lists unreferenced payloads older than the cut-off and deletes them, leaving referenced and newer ones', async () => {
    const refs = []
    for (const key of ['a', 'b', 'c', 'd', 'e']) refs.push((await payloads.put(payload(`content ${key}`, { idempotencyKey: key }))).ref)
    await database.pool.query("update content_payloads set created_at = now() - interval '1 hour' where ref <> $1", [refs[4]])
    const referenced = new Set([refs[0]])
    const cutOff = new Date(Date.now() - 60_000)
    const orphans = await payloads.listOrphans(cutOff, async (ref) => referenced.has(ref), { limit: 2 })
    expect(orphans).toHaveLength(2)
    expect(orphans.every((orphan) => !referenced.has(orphan.ref))).toBe(true)
    const paged = await payloads.listOrphans(cutOff, async (ref) => referenced.has(ref), { limit: 3 })
    expect(paged.map((orphan) => orphan.ref).sort()).toEqual([refs[1], refs[2], refs[3]].sort())
    const all = await payloads.listOrphans(cutOff, async (ref) => referenced.has(ref))
    expect(all.map((orphan) => orphan.ref).sort()).toEqual([refs[1], refs[2], refs[3]].sort())
    expect(all[0]).toMatchObject({ tenantId: 'acme', taskId: 'task-1' })
    for (const orphan of all) expect(await payloads.deleteOrphan(orphan.ref)).toBe(true)
    expect(await payloads.deleteOrphan(all[0]!.ref)).toBe(false)
    expect((await payloadRows()).map((row) => row.ref).sort()).toEqual([refs[0], refs[4]].sort())
    expect(await payloads.listOrphans(cutOff, async (ref) => referenced.has(ref))).toEqual([])
    expect(await payloads.put(payload('content b', { idempotencyKey: 'b' }))).toMatchObject({ ref: refs[1] })
  })
})
