import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import type pg from 'pg'
import { assertTenantId } from '../historian/streams'
import { Role, type Principal } from './roles'

/** An API key as listed: never the key itself, only its display prefix. */
export interface ApiKeyInfo extends Principal {
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
  role: Role
  tenant_id: string | null
  can_approve: boolean
  label: string
  created_at: Date
  revoked_at: Date | null
}

/** What a new key is: its role, its tenant scope and, for a tenant key, whether it may approve. */
export interface ApiKeyRequest {
  readonly role: Role
  /** Required for a tenant key, optional for an operator key (none: a global operator), absent for an analyst key. */
  readonly tenantId?: string
  /** Tenant keys only: the key may approve (task.approve). */
  readonly canApprove?: boolean
  readonly label?: string
}

/** The role, tenant scope and approval flag of a request, checked as the api_keys constraints check them; throws InvalidApiKeyRequestError. */
export function validateApiKeyRequest(request: ApiKeyRequest): { role: Role; tenantId: string | null; canApprove: boolean; label: string } {
  if (!Object.values(Role).includes(request.role)) throw new InvalidApiKeyRequestError(`unknown role ${JSON.stringify(request.role)}`)
  if (request.role === Role.tenant && request.tenantId === undefined) throw new InvalidApiKeyRequestError('a tenant key needs a tenant ID')
  if (request.role === Role.analyst && request.tenantId !== undefined) throw new InvalidApiKeyRequestError('an analyst key reads every tenant; give no tenant ID')
  if (request.role !== Role.tenant && request.canApprove === true) throw new InvalidApiKeyRequestError('only a tenant key may approve')
  const tenantId = request.tenantId === undefined ? null : assertTenantId(request.tenantId)
  const label = request.label ?? ''
  if (label.length > MAX_LABEL || /\p{Cc}/u.test(label)) throw new InvalidApiKeyRequestError(`the label must be at most ${MAX_LABEL} characters with no control characters`)
  return { role: request.role, tenantId, canApprove: request.canApprove === true, label }
}

/** Creates a key and stores only its hash; returns the plaintext key, which cannot be recovered afterwards. */
export async function createApiKey(pool: pg.Pool, request: ApiKeyRequest): Promise<{ id: string; key: string }> {
  return insertApiKey(pool, validateApiKeyRequest(request))
}

async function insertApiKey(db: pg.Pool | pg.PoolClient, valid: ReturnType<typeof validateApiKeyRequest>): Promise<{ id: string; key: string }> {
  const id = randomUUID()
  const key = randomBytes(KEY_BYTES).toString('base64url')
  await db.query(`insert into api_keys (id, key_hash, prefix, role, tenant_id, can_approve, label) values ($1, $2, $3, $4, $5, $6, $7)`, [
    id,
    hashApiKey(key),
    key.slice(0, 8),
    valid.role,
    valid.tenantId,
    valid.canApprove,
    valid.label,
  ])
  return { id, key }
}

/**
 * The bootstrap: creates a global operator key only while no unrevoked one exists, or returns undefined. The check and
 * the insert hold a table lock that conflicts with itself, so of two concurrent bootstraps only one creates a key.
 */
export async function createFirstOperatorKey(pool: pg.Pool, label?: string): Promise<{ id: string; key: string } | undefined> {
  const valid = validateApiKeyRequest({ role: Role.operator, label })
  const client = await pool.connect()
  try {
    await client.query('begin')
    await client.query('lock table api_keys in share row exclusive mode')
    const created = (await hasActiveGlobalOperatorKey(client)) ? undefined : await insertApiKey(client, valid)
    await client.query('commit')
    return created
  } catch (error) {
    await client.query('rollback').catch(() => undefined)
    throw error
  } finally {
    client.release()
  }
}

/** Every key, oldest first, with its prefix, role, tenant, label and whether it was revoked. */
export async function listApiKeys(pool: pg.Pool): Promise<ApiKeyInfo[]> {
  const result = await pool.query<KeyRow>('select * from api_keys order by created_at, id')
  return result.rows.map((row) => ({
    keyId: row.id,
    prefix: row.prefix,
    role: row.role,
    tenantId: row.tenant_id,
    canApprove: row.can_approve,
    label: row.label,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
  }))
}

/** The API route that revokes a key (`POST`, under `/v1`): the way to revoke while `serve` holds the embedded database. */
export const KEY_REVOCATION_ROUTE = '/api-keys/:keyId/revoke'

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
 * The tenant scope of a key by its ID (null for a global key), revoked or not; undefined when no key has that ID. Used
 * to decide key.revoke before revoking.
 */
export async function apiKeyScope(pool: pg.Pool, keyId: string): Promise<{ tenantId: string | null } | undefined> {
  if (!UUID_PATTERN.test(keyId)) return undefined
  const result = await pool.query<{ tenant_id: string | null }>('select tenant_id from api_keys where id = $1', [keyId])
  const row = result.rows[0]
  return row ? { tenantId: row.tenant_id } : undefined
}

/** Whether an unrevoked global operator key exists: until one does, `api-keys create --operator` needs no key (bootstrap). */
async function hasActiveGlobalOperatorKey(db: pg.Pool | pg.PoolClient): Promise<boolean> {
  const result = await db.query(`select 1 from api_keys where role = 'operator' and tenant_id is null and revoked_at is null limit 1`)
  return result.rows.length > 0
}

/**
 * The principal of a presented key, or undefined when it is malformed, unknown or revoked (callers answer all three
 * the same way). The lookup is by digest; the digests are then compared in constant time.
 */
export async function authenticate(pool: pg.Pool, presentedKey: string): Promise<Principal | undefined> {
  if (!KEY_PATTERN.test(presentedKey)) return undefined
  const digest = hashApiKey(presentedKey)
  const result = await pool.query<KeyRow>('select * from api_keys where key_hash = $1', [digest])
  const row = result.rows[0]
  if (!row || row.revoked_at !== null) return undefined
  if (!timingSafeEqual(Buffer.from(row.key_hash, 'hex'), Buffer.from(digest, 'hex'))) return undefined
  return { keyId: row.id, role: row.role, tenantId: row.tenant_id, canApprove: row.can_approve }
}
