import type pg from 'pg'
import { redactSecrets, redactValue } from '../historian/redact'
import type { Role } from './roles'

/** One API request as the access log records it: who asked, for what, and what they got. */
export interface ApiAccess {
  readonly keyId: string | null
  readonly role: Role | null
  readonly keyTenantId: string | null
  readonly method: string
  readonly route: string
  readonly requestedTenant: string | null
  readonly query: Readonly<Record<string, unknown>>
  readonly status: number
  readonly rowsReturned: number | null
  readonly deniedReason: string | null
  /** The client's address (`request.ip`: the socket's, or the one a trusted proxy forwarded); null when unknown. */
  readonly clientAddress: string | null
}

/** A recorded access, with its sequence number and time. */
export interface ApiAccessEntry extends ApiAccess {
  readonly id: bigint
  readonly at: Date
}

const MAX_TEXT = 256

/**
 * Makes caller-controlled text storable: PostgreSQL text cannot hold NUL, and nobody needs more than 256 characters of
 * a probe to see what it was.
 */
export function storableText(value: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/\u0000/g, '\uFFFD')
  return clean.length > MAX_TEXT ? `${clean.slice(0, MAX_TEXT)}…` : clean
}

/** The same for every string in a JSON-like value (keys too), so a hostile query string always fits in jsonb. */
export function storableJson(value: unknown): unknown {
  if (typeof value === 'string') return storableText(value)
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Date) return value.toISOString()
  if (Array.isArray(value)) return value.slice(0, 50).map(storableJson)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).slice(0, 50).map(([key, item]) => [storableText(key), storableJson(item)]))
  }
  return value ?? null
}

/**
 * Appends one access to the log. The log is append-only: there is deliberately no update or delete, so every text and
 * the query pass through historian/redact.ts first: a key written here could never be removed.
 */
export async function recordApiAccess(pool: pg.Pool, access: ApiAccess): Promise<void> {
  await pool.query(
    `insert into api_access_log (key_id, role, key_tenant_id, method, route, requested_tenant, query, status, rows_returned, denied_reason, client_address)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    storableAccess(access),
  )
}

/** The parameters $1 to $11 of an access log row, every caller-controlled text redacted and made storable. */
function storableAccess(access: ApiAccess): unknown[] {
  return [
    access.keyId,
    access.role,
    access.keyTenantId,
    storableText(access.method),
    storableText(redactSecrets(access.route)),
    access.requestedTenant === null ? null : storableText(redactSecrets(access.requestedTenant)),
    JSON.stringify(storableJson(redactValue(access.query))),
    access.status,
    access.rowsReturned,
    access.deniedReason === null ? null : storableText(redactSecrets(access.deniedReason)),
    access.clientAddress === null ? null : storableText(access.clientAddress),
  ]
}

/** How many refusals of one client address, minute, status and reason get a row of their own in the access log. */
export const DEFAULT_REFUSALS_LOGGED_PER_MINUTE = 10

/**
 * Records a request refused before any valid key was seen (no key, an unknown one, a credential in the query string,
 * a malformed URL, a timeout, oversized headers): counts it in api_access_refusals under its client address, UTC minute,
 * status and reason, and appends it to the access log as well only while that count is at most `rowsPerMinute`. One
 * statement, so concurrent refusals cannot both take the last row. Reasons come from a fixed set, so the groups are few.
 */
export async function recordRefusedAccess(pool: pg.Pool, access: ApiAccess, rowsPerMinute = DEFAULT_REFUSALS_LOGGED_PER_MINUTE): Promise<void> {
  const row = storableAccess(access)
  await pool.query(
    `with counted as (
       insert into api_access_refusals (client_address, minute, status, reason, count)
       values ($11, date_trunc('minute', now()), $8, coalesce($10, ''), 1)
       on conflict (client_address, minute, status, reason) do update set count = api_access_refusals.count + 1
       returning count
     )
     insert into api_access_log (key_id, role, key_tenant_id, method, route, requested_tenant, query, status, rows_returned, denied_reason, client_address)
     select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 from counted where counted.count <= $12`,
    [...row, rowsPerMinute],
  )
}

/** How long client addresses are kept in the access log and the refusal counts unless configured otherwise. */
export const DEFAULT_ADDRESS_RETENTION_DAYS = 30

/**
 * Removes the client addresses recorded more than `retentionDays` ago (migrations/018: the one update the append-only
 * log allows). Returns how many access log rows lost their address.
 */
export async function forgetClientAddresses(pool: pg.Pool, retentionDays = DEFAULT_ADDRESS_RETENTION_DAYS): Promise<number> {
  if (!Number.isSafeInteger(retentionDays) || retentionDays < 1) throw new RangeError(`address retention must be a whole number of days of at least 1, got ${retentionDays}`)
  const { rows } = await pool.query<{ forgotten: string }>('select api_forget_client_addresses(make_interval(days => $1)) as forgotten', [retentionDays])
  return Number(rows[0]!.forgotten)
}

interface AccessRow {
  id: string
  at: Date
  key_id: string | null
  role: Role | null
  key_tenant_id: string | null
  method: string
  route: string
  requested_tenant: string | null
  query: Record<string, unknown>
  status: number
  rows_returned: number | null
  denied_reason: string | null
  client_address: string | null
}

/** The most recent accesses, oldest first (at most `limit`, default 100), optionally only one key's. */
export async function recentApiAccesses(pool: pg.Pool, options: { readonly keyId?: string; readonly limit?: number } = {}): Promise<ApiAccessEntry[]> {
  const limit = options.limit ?? 100
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new RangeError(`limit must be a whole number from 1 to 10000, got ${limit}`)
  const result = await pool.query<AccessRow>(
    `select * from (
       select * from api_access_log where ($1::uuid is null or key_id = $1::uuid) order by id desc limit $2
     ) recent order by id`,
    [options.keyId ?? null, limit],
  )
  return result.rows.map((row) => ({
    id: BigInt(row.id),
    at: row.at,
    keyId: row.key_id,
    role: row.role,
    keyTenantId: row.key_tenant_id,
    method: row.method,
    route: row.route,
    requestedTenant: row.requested_tenant,
    query: row.query,
    status: row.status,
    rowsReturned: row.rows_returned,
    deniedReason: row.denied_reason,
    clientAddress: row.client_address,
  }))
}
