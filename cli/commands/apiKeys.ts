import {
  apiKeyScope,
  createApiKey,
  createFirstOperatorKey,
  InvalidApiKeyRequestError,
  KEY_REVOCATION_ROUTE,
  listApiKeys,
  revokeApiKey,
  validateApiKeyRequest,
  type ApiKeyInfo,
  type ApiKeyRequest,
} from '../../api/keys'
import { may, PermissionDeniedError, Role } from '../../api/roles'
import { DataDirectoryLockedError, openDatabase, type Database } from '../../historian/adapters/postgres/database'
import { authenticateCaller, authorizeCaller } from '../runtime/callerPermission'
import { loadConfig } from '../runtime/config'
import { formatRows, type OutputColumn, type OutputFormat } from '../runtime/output'

async function withDatabase<T>(run: (database: Database) => Promise<T>, config = loadConfig()): Promise<T> {
  const database = await openDatabase({ url: config.databaseUrl, pgliteDataDir: config.pgliteDataDir, statementTimeoutMs: config.statementTimeoutMs })
  try {
    return await run(database)
  } finally {
    await database.close()
  }
}

/** The options of `annalist api-keys create`, as commander parses them. */
export interface ApiKeysCreateOptions {
  readonly tenant?: string
  readonly analyst?: boolean
  readonly operator?: boolean
  readonly canApprove?: boolean
  readonly label?: string
}

/** The key `api-keys create` is asked for: --analyst, --operator [--tenant T], or --tenant T [--can-approve]. */
export function apiKeyRequestOf(options: ApiKeysCreateOptions): ApiKeyRequest {
  if (options.analyst && options.operator) throw new InvalidApiKeyRequestError('give at most one of --analyst and --operator')
  const role = options.analyst ? Role.analyst : options.operator ? Role.operator : Role.tenant
  if (role === Role.tenant && options.tenant === undefined) throw new InvalidApiKeyRequestError('give --tenant <tenantId>, --analyst or --operator [--tenant <tenantId>]')
  if (options.canApprove && role !== Role.tenant) throw new InvalidApiKeyRequestError('--can-approve is only for tenant keys')
  return { role, tenantId: options.tenant, canApprove: options.canApprove === true, label: options.label }
}

/**
 * `annalist api-keys create`: prints the new key once (stdout); only its hash is stored. Needs key.create on the new
 * key's tenant (ANNALIST_API_KEY), except for the bootstrap: a global operator key while no active one exists.
 */
export async function apiKeysCreateCommand(options: ApiKeysCreateOptions): Promise<void> {
  const request = apiKeyRequestOf(options)
  const valid = validateApiKeyRequest(request)
  const config = loadConfig()
  const created = await withDatabase(async (database) => {
    const bootstrap = config.apiKey === undefined && valid.role === Role.operator && valid.tenantId === null
    const first = bootstrap ? await createFirstOperatorKey(database.pool, valid.label) : undefined
    if (first) return first
    await authorizeCaller(database.pool, config.apiKey, 'key.create', valid.tenantId)
    return createApiKey(database.pool, request)
  }, config)
  console.error(`created ${describeNewKey(valid)}, ID ${created.id}`)
  console.log(created.key)
  console.error('this key is shown only now: it is not stored (only its SHA-256 hash is), so keep it somewhere safe')
}

function describeNewKey(key: { role: Role; tenantId: string | null; canApprove: boolean }): string {
  if (key.role === Role.analyst) return 'an analyst key (reads every tenant and the cross-tenant analytics)'
  if (key.role === Role.operator) return key.tenantId === null ? 'a global operator key' : `an operator key for tenant ${key.tenantId}`
  return `a key for tenant ${key.tenantId}${key.canApprove ? ' (may approve)' : ''}`
}

const COLUMNS: readonly OutputColumn<ApiKeyInfo>[] = [
  { key: 'keyId', header: 'id' },
  { key: 'prefix', header: 'prefix' },
  { key: 'role', header: 'role' },
  { key: 'tenantId', header: 'tenant' },
  { key: 'canApprove', header: 'approves' },
  { key: 'label', header: 'label' },
  { key: 'createdAt', header: 'created' },
  { key: 'revokedAt', header: 'revoked' },
]

/** `annalist api-keys list`: every key's ID, display prefix, role, tenant, label and revocation; never a key. */
export async function apiKeysListCommand(options: { format: OutputFormat }): Promise<void> {
  const keys = await withDatabase((database) => listApiKeys(database.pool))
  console.log(formatRows(keys, COLUMNS, options.format, 'no API keys (create one with `annalist api-keys create`)'))
}

/**
 * `annalist api-keys revoke <id>`: the key stops working at once. Needs key.revoke on the key's tenant (ANNALIST_API_KEY);
 * a scoped operator is refused alike for an unknown key and another tenant's key, and the refusal names neither.
 */
export async function apiKeysRevokeCommand(keyId: string): Promise<void> {
  const config = loadConfig()
  const revoke = withDatabase(async (database) => {
    const caller = await authenticateCaller(database.pool, config.apiKey, 'key.revoke')
    const scope = caller.tenantId === null ? null : ((await apiKeyScope(database.pool, keyId))?.tenantId ?? null)
    if (!may(caller, 'key.revoke', scope)) throw new PermissionDeniedError(caller, 'key.revoke', null)
    return revokeApiKey(database.pool, keyId)
  }, config)
  const { revokedAt } = await revoke.catch((error: unknown) => {
    if (error instanceof DataDirectoryLockedError) throw new RevokeThroughServerError(keyId, error)
    throw error
  })
  console.log(`API key ${keyId} revoked (since ${revokedAt.toISOString()})`)
}

/**
 * Thrown when `api-keys revoke` finds the embedded database held by another process, usually a running `annalist
 * serve`: the key is revoked through that server's API instead, which takes effect on its very next request.
 */
export class RevokeThroughServerError extends Error {
  constructor(
    readonly keyId: string,
    cause: DataDirectoryLockedError,
  ) {
    super(
      `cannot revoke API key ${keyId} here: the embedded database is in use by process ${cause.ownerPid} (a running annalist serve?); ` +
        `revoke it through that server's API with an operator key: POST /v1${KEY_REVOCATION_ROUTE.replace(':keyId', keyId)}`,
      { cause },
    )
    this.name = 'RevokeThroughServerError'
  }
}
