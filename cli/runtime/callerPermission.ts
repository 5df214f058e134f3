import type pg from 'pg'
import { authenticate } from '../../api/keys'
import { assertMay, type Permission, type Principal } from '../../api/roles'
import { openDatabase } from '../../historian/adapters/postgres/database'
import { ConfigError, type AnnalistConfig } from './config'

/** The variable that holds the caller's API key. */
export const API_KEY_VARIABLE = 'ANNALIST_API_KEY'

/**
 * The caller of a state-changing command, from the API key in ANNALIST_API_KEY, checked against the api_keys table.
 * Throws ConfigError naming the variable when it is unset or not a valid key (malformed, unknown and revoked alike);
 * the key itself is never part of a message.
 */
export async function authenticateCaller(pool: pg.Pool, apiKey: string | undefined, permission: Permission): Promise<Principal> {
  if (apiKey === undefined) {
    throw new ConfigError(API_KEY_VARIABLE, `not set; this command needs an API key with the permission ${permission} (docs/roles.md)`)
  }
  const principal = await authenticate(pool, apiKey)
  if (!principal) throw new ConfigError(API_KEY_VARIABLE, 'not a valid API key (malformed, unknown or revoked)')
  return principal
}

/**
 * Checks that the caller (ANNALIST_API_KEY) may do `permission` on `tenantId` (null: no single tenant). Throws
 * ConfigError or PermissionDeniedError (api/roles.ts), whose one-line message is the same whether or not the tenant
 * exists. Returns the caller.
 */
export async function authorizeCaller(pool: pg.Pool, apiKey: string | undefined, permission: Permission, tenantId: string | null): Promise<Principal> {
  const principal = await authenticateCaller(pool, apiKey, permission)
  assertMay(principal, permission, tenantId)
  return principal
}

/** authorizeCaller for a command that does not otherwise open the database: opens it for the check only. */
export async function authorizeCallerOnce(config: Pick<AnnalistConfig, 'databaseUrl' | 'pgliteDataDir' | 'statementTimeoutMs' | 'apiKey'>, permission: Permission, tenantId: string | null): Promise<Principal> {
  const database = await openDatabase({ url: config.databaseUrl, pgliteDataDir: config.pgliteDataDir, statementTimeoutMs: config.statementTimeoutMs })
  try {
    return await authorizeCaller(database.pool, config.apiKey, permission, tenantId)
  } finally {
    await database.close()
  }
}
