import { createApiKey, listApiKeys, revokeApiKey, type ApiKeyInfo } from '../../api/keys'
import { openDatabase, type Database } from '../../historian/adapters/postgres/database'
import { loadConfig } from '../runtime/config'
import { formatRows, type OutputColumn, type OutputFormat } from '../runtime/output'

async function withDatabase<T>(run: (database: Database) => Promise<T>): Promise<T> {
  const config = loadConfig()
  const database = await openDatabase({ url: config.databaseUrl, pgliteDataDir: config.pgliteDataDir })
  try {
    return await run(database)
  } finally {
    await database.close()
  }
}

/** `annalist api-keys create --tenant T | --analyst [--label L]`: prints the new key once (stdout); only its hash is stored. */
export async function apiKeysCreateCommand(options: { tenant?: string; analyst?: boolean; label?: string }): Promise<void> {
  if ((options.tenant === undefined) === (options.analyst !== true)) throw new Error('give exactly one of --tenant <tenantId> or --analyst')
  const created = await withDatabase((database) =>
    createApiKey(database.pool, options.analyst ? { role: 'analyst', label: options.label } : { role: 'tenant', tenantId: options.tenant, label: options.label }),
  )
  const scope = options.analyst ? 'an analyst key (reads every tenant and the cross-tenant analytics)' : `a key for tenant ${options.tenant}`
  console.error(`created ${scope}, ID ${created.id}`)
  console.log(created.key)
  console.error('this key is shown only now: it is not stored (only its SHA-256 hash is), so keep it somewhere safe')
}

const COLUMNS: readonly OutputColumn<ApiKeyInfo>[] = [
  { key: 'keyId', header: 'id' },
  { key: 'prefix', header: 'prefix' },
  { key: 'role', header: 'role' },
  { key: 'tenantId', header: 'tenant' },
  { key: 'label', header: 'label' },
  { key: 'createdAt', header: 'created' },
  { key: 'revokedAt', header: 'revoked' },
]

/** `annalist api-keys list`: every key's ID, display prefix, role, tenant, label and revocation; never a key. */
export async function apiKeysListCommand(options: { format: OutputFormat }): Promise<void> {
  const keys = await withDatabase((database) => listApiKeys(database.pool))
  console.log(formatRows(keys, COLUMNS, options.format, 'no API keys (create one with `annalist api-keys create`)'))
}

/** `annalist api-keys revoke <id>`: the key stops working at once. */
export async function apiKeysRevokeCommand(keyId: string): Promise<void> {
  const { revokedAt } = await withDatabase((database) => revokeApiKey(database.pool, keyId))
  console.log(`API key ${keyId} revoked (since ${revokedAt.toISOString()})`)
}
