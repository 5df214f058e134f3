import type pg from 'pg'
import type { Classification } from '../events/metadata'
import { decryptContent, encryptContent } from '../keys/contentCipher'
import { KeyDestroyedError, type KeyStore } from '../keys/keyStore'
import { ContentRef, PayloadRefId } from './contentRef'
import { padToBucket, unpad } from './padding'
import { digestMatches, keyedDigest, payloadRef } from './payloadKeys'
import { PayloadConflictError, UnknownPayloadError, type OrphanPayload, type PayloadOwner, type PayloadRead, type PayloadStore, type PayloadToPut } from './payloadStore'

interface PayloadRow {
  ref: string
  tenant_id: string
  task_id: string
  purpose: string
  classification: Classification
  digest: string
  key_id: string
  nonce: Buffer | null
  ciphertext: Buffer | null
  shredded_at: Date | null
}

/** The purpose contentCipher binds a payload's ciphertext to: its ref and purpose, so bytes moved to another row do not open. */
const payloadPurpose = (ref: string, purpose: string) => JSON.stringify(['annalist:payload:v1', ref, purpose])

/** The default PayloadStore: the `content_payloads` table (migration 020), on a PostgreSQL server or PGlite. */
export class PostgresPayloadStore implements PayloadStore {
  readonly #pool: pg.Pool
  readonly #keys: KeyStore

  constructor(pool: pg.Pool, keys: KeyStore) {
    this.#pool = pool
    this.#keys = keys
  }

  async put(payload: PayloadToPut): Promise<ContentRef> {
    const dataKey = await this.#keys.dataKeyFor(payload.tenantId, payload.taskId)
    const content = Buffer.from(payload.content, 'utf8')
    const contentRef: ContentRef = { ref: payloadRef(dataKey, payload), digest: keyedDigest(dataKey, content), classification: payload.classification }
    const sealed = encryptContent(dataKey, padToBucket(content), payloadPurpose(contentRef.ref, payload.purpose))
    const inserted = await this.#pool.query(
      `insert into content_payloads (ref, tenant_id, task_id, purpose, classification, digest, key_id, nonce, ciphertext)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict (ref) do nothing`,
      [contentRef.ref, payload.tenantId, payload.taskId, payload.purpose, payload.classification, contentRef.digest, sealed.keyId, sealed.nonce, sealed.ciphertext],
    )
    if (inserted.rowCount === 1) return contentRef
    const existing = await this.#row(contentRef.ref)
    const same =
      existing !== undefined &&
      existing.tenant_id === payload.tenantId &&
      existing.task_id === payload.taskId &&
      existing.purpose === payload.purpose &&
      existing.classification === payload.classification &&
      existing.digest === contentRef.digest
    if (!same) throw new PayloadConflictError(contentRef.ref)
    return contentRef
  }

  async get(ref: string, expected: PayloadOwner): Promise<PayloadRead> {
    const row = await this.#ownedRow(ref, expected)
    if (row.shredded_at !== null) return { status: 'erased', reason: 'shredded', erasedAt: row.shredded_at }
    // The table's check constraint: an unshredded row has its nonce and ciphertext.
    const sealed = { keyId: row.key_id, nonce: row.nonce!, ciphertext: row.ciphertext! }
    try {
      const padded = await decryptContent(this.#keys, sealed, { ...expected, purpose: payloadPurpose(row.ref, row.purpose) })
      return { status: 'present', content: unpad(padded).toString('utf8') }
    } catch (error) {
      if (error instanceof KeyDestroyedError) return { status: 'erased', reason: 'keys-destroyed', erasedAt: error.destroyedAt }
      throw error
    }
  }

  async verifyDigest(ref: ContentRef, content: string, expected: PayloadOwner): Promise<boolean | 'erased'> {
    const row = await this.#ownedRow(ref.ref, expected)
    try {
      const dataKey = await this.#keys.dataKeyById(row.key_id)
      return ref.digest === row.digest && digestMatches(dataKey, Buffer.from(content, 'utf8'), ref.digest)
    } catch (error) {
      if (error instanceof KeyDestroyedError) return 'erased'
      throw error
    }
  }

  async listOrphans(olderThan: Date, isReferenced: (ref: string) => Promise<boolean>, options: { limit?: number } = {}): Promise<OrphanPayload[]> {
    const limit = options.limit ?? 100
    const orphans: OrphanPayload[] = []
    let after: string | null = null
    while (orphans.length < limit) {
      const { rows }: { rows: { ref: string; tenant_id: string; task_id: string; created_at: Date }[] } = await this.#pool.query(
        'select ref, tenant_id, task_id, created_at from content_payloads where created_at < $1 and ($2::uuid is null or ref > $2::uuid) order by ref limit $3',
        [olderThan, after, limit],
      )
      for (const row of rows) {
        if (orphans.length < limit && !(await isReferenced(row.ref))) orphans.push({ ref: row.ref, tenantId: row.tenant_id, taskId: row.task_id, createdAt: row.created_at })
      }
      if (rows.length < limit) break
      after = rows[rows.length - 1]!.ref
    }
    return orphans
  }

  async deleteOrphan(ref: string): Promise<boolean> {
    if (!PayloadRefId.safeParse(ref).success) return false
    const deleted = await this.#pool.query('delete from content_payloads where ref = $1', [ref])
    return deleted.rowCount === 1
  }

  async #row(ref: string): Promise<PayloadRow | undefined> {
    if (!PayloadRefId.safeParse(ref).success) return undefined
    const { rows } = await this.#pool.query<PayloadRow>(
      'select ref, tenant_id, task_id, purpose, classification, digest, key_id, nonce, ciphertext, shredded_at from content_payloads where ref = $1',
      [ref],
    )
    return rows[0]
  }

  /** The ref's row if it belongs to `expected`; UnknownPayloadError otherwise, the same for another tenant's ref as for none. */
  async #ownedRow(ref: string, expected: PayloadOwner): Promise<PayloadRow> {
    const row = await this.#row(ref)
    if (!row || row.tenant_id !== expected.tenantId || row.task_id !== expected.taskId) throw new UnknownPayloadError(ref)
    return row
  }
}
