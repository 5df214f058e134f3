import { openDatabase, type Database } from '../../historian/adapters/postgres/database'
import { assertTenantId } from '../../historian/streams'
import type { KeyStore } from '../../historian/keys/keyStore'
import { authorizeCaller } from '../runtime/callerPermission'
import { loadConfig, requireKek, type AnnalistConfig } from '../runtime/config'
import { openKeyStore } from '../runtime/keyStore'
import { startActivityIndicator, type ActivityIndicator } from '../runtime/progress'
import { parseWholeNumber } from './lag'

/** Checks the KEK is configured (nothing is opened without it), opens the database, checks the caller may keys.manage `tenantId`, and runs `work`. */
async function withKeyStore<T>(tenantId: string | null, work: (keys: KeyStore, config: AnnalistConfig) => Promise<T>): Promise<T> {
  const config = loadConfig()
  requireKek(config)
  const database: Database = await openDatabase({ url: config.databaseUrl, pgliteDataDir: config.pgliteDataDir, statementTimeoutMs: config.statementTimeoutMs })
  try {
    await authorizeCaller(database.pool, config.apiKey, 'keys.manage', tenantId)
    return await work(openKeyStore(database.pool, config), config)
  } finally {
    await database.close()
  }
}

/**
 * `annalist keys rotate --tenant T`: starts a new current key for the tenant, wrapped by the current KEK version. Tasks
 * that get their first data key from now on are under it; older data keys stay under the older tenant key, which still
 * unwraps them. Needs keys.manage on the tenant (ANNALIST_API_KEY).
 */
export async function keysRotateCommand(options: { tenant: string }): Promise<void> {
  const tenantId = assertTenantId(options.tenant)
  const rotated = await withKeyStore(tenantId, (keys) => keys.rotateTenantKey(tenantId))
  console.log(
    `tenant ${tenantId}: new tenant key ${rotated.keyId}${rotated.previousKeyId ? ` replaces ${rotated.previousKeyId} for new tasks; the old key still unwraps the data keys it wrapped` : ' (the tenant had none)'}`,
  )
}

/**
 * `annalist keys rewrap [--batch-size N]`: re-wraps every tenant key under the current KEK version, one transaction per
 * batch, then records the older versions as retired. Safe to kill at any point and run again: each batch commits whole,
 * and a rerun picks up the keys still under an older version. Needs keys.manage with no tenant scope (ANNALIST_API_KEY).
 */
export async function keysRewrapCommand(options: { batchSize: string }): Promise<void> {
  const batchSize = parseWholeNumber(options.batchSize, '--batch-size', 1, 10_000)
  const result = await withKeyStore(null, async (keys, config) => {
    // Shown from the first committed batch on, so that a refusal (a wrong KEK, say) stays the only line on stderr.
    let progress: ActivityIndicator | undefined
    try {
      return await keys.rewrap({
        batchSize,
        onProgress: ({ rewrapped, remaining }) => {
          progress ??= startActivityIndicator({ label: `rewrapping tenant keys under KEK version ${requireKek(config).currentVersion}`, countLabel: 'batches' })
          progress.tick(`${rewrapped} rewrapped, ${remaining} to go`)
        },
      })
    } finally {
      progress?.stop()
    }
  })
  const retired = result.retiredVersions.length > 0 ? `; KEK version(s) ${result.retiredVersions.join(', ')} retired: remove them from ANNALIST_KEK and destroy them` : ''
  console.log(`every tenant key is wrapped by KEK version ${result.kekVersion} (${result.rewrapped} rewrapped now)${retired}`)
}

