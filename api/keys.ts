import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import type pg from 'pg'
import { assertTenantId } from '../historian/streams'

/** What an API key may read: one tenant's data, or (analyst) every tenant's plus the cross-tenant analytics. */
export const ApiRole = { tenant: 'tenant', analyst: 'analyst' } as const
export type ApiRole = (typeof ApiRole)[keyof typeof ApiRole]

/** The caller behind an authenticated request. */
export interface ApiPrincipal {
  readonly keyId: string
  readonly role: ApiRole
  /** The one tenant a tenant key may read; null for an analyst key. */
  readonly tenantId: string | null
}

/** An API key as listed: never the key itself, only its display prefix. */
export interface ApiKeyInfo extends ApiPrincipal {
  readonly prefix: string
  readonly label: string
  readonly createdAt: Date
  readonly revokedAt: Date | null
}

/** Thrown when a key is requested with an inconsistent role and tenant or a bad label; nothing is written. */
export class InvalidApiKeyRequestError extends Error {
  constructor(readonly reason: string) {
    super(`cannot create API key: ${reason}`)
    this.name = 'InvalidApiKeyRequestError'
  }
}

/** Thrown when revoking a key ID that does not exist. */
export class UnknownApiKeyError extends Error {
  constructor(readonly keyId: string) {
    super(`no API key with ID ${JSON.stringify(keyId)}`)
    this.name = 'UnknownApiKeyError'
  }
}

const KEY_BYTES = 32
/** A key as handed out: 32 random bytes in base64url, 43 characters. */
const KEY_PATTERN = /^[A-Za-z0-9_-]{43}$/
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const MAX_LABEL = 200

/**
 * SHA-256 of a key, hex. A fast hash is right here: the key is 32 random bytes, so there is nothing to guess, and a
 * slow password hash would only make every request slower.
 */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex')
}

interface KeyRow {
  id: string
  key_hash: string
  prefix: string
  role: ApiRole
  tenant_id: string | null
  label: string
  created_at: Date
  revoked_at: Date | null
}

/** Creates a key and stores only its hash; returns the plaintext key, which cannot be recovered afterwards. */
export async function createApiKey(
  pool: pg.Pool,
  request: { readonly role: ApiRole; readonly tenantId?: string; readonly label?: string },
): Promise<{ id: string; key: string }> {
  if (request.role !== ApiRole.tenant && request.role !== ApiRole.analyst) throw new InvalidApiKeyRequestError(`unknown role ${JSON.stringify(request.role)}`)
  if (request.role === ApiRole.tenant && request.tenantId === undefined) throw new InvalidApiKeyRequestError('a tenant key needs a tenant ID')
  if (request.role === ApiRole.analyst && request.tenantId !== undefined) throw new InvalidApiKeyRequestError('an analyst key reads every tenant; give no tenant ID')
  const tenantId = request.tenantId === undefined ? null : assertTenantId(request.tenantId)
  const label = request.label ?? ''
  if (label.length > MAX_LABEL || /\p{Cc}/u.test(label)) throw new InvalidApiKeyRequestError(`the label must be at most ${MAX_LABEL} characters with no control characters`)
  const id = randomUUID()
  const key = randomBytes(KEY_BYTES).toString('base64url')
  await pool.query(`insert into api_keys (id, key_hash, prefix, role, tenant_id, label) values ($1, $2, $3, $4, $5, $6)`, [
    id,
    hashApiKey(key),
    key.slice(0, 8),
    request.role,
    tenantId,
    label,
  ])
  return { id, key }
}

/** Every key, oldest first, with its prefix, role, tenant, label and whether it was revoked. */
export async function listApiKeys(pool: pg.Pool): Promise<ApiKeyInfo[]> {
  const result = await pool.query<KeyRow>('select * from api_keys order by created_at, id')
  return result.rows.map((row) => ({
    keyId: row.id,
    prefix: row.prefix,
    role: row.role,
    tenantId: row.tenant_id,
    label: row.label,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
  }))
}

/** Revokes a key from now on (revoking it again keeps the first time); throws UnknownApiKeyError for an unknown ID. */
export async function revokeApiKey(pool: pg.Pool, keyId: string): Promise<{ revokedAt: Date }> {
  if (!UUID_PATTERN.test(keyId)) throw new UnknownApiKeyError(keyId)
  const result = await pool.query<{ revoked_at: Date }>(
    'update api_keys set revoked_at = coalesce(revoked_at, now()) where id = $1 returning revoked_at',
    [keyId],
  )
  const row = result.rows[0]
  if (!row) throw new UnknownApiKeyError(keyId)
  return { revokedAt: row.revoked_at }
}

/**
 * The principal of a presented key, or undefined when it is malformed, unknown or revoked (callers answer all three
 * the same way). The lookup is by digest; the digests are then compared in constant time.
 */
export async function authenticate(pool: pg.Pool, presentedKey: string): Promise<ApiPrincipal | undefined> {
  if (!KEY_PATTERN.test(presentedKey)) return undefined
  const digest = hashApiKey(presentedKey)
  const result = await pool.query<KeyRow>('select * from api_keys where key_hash = $1', [digest])
  const row = result.rows[0]
  if (!row || row.revoked_at !== null) return undefined
  if (!timingSafeEqual(Buffer.from(row.key_hash, 'hex'), Buffer.from(digest, 'hex'))) return undefined
  return { keyId: row.id, role: row.role, tenantId: row.tenant_id }
}
