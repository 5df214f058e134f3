import type pg from 'pg'
import type { KeyStore } from '../../historian/keys/keyStore'
import { PostgresKeyStore } from '../../historian/keys/postgresKeyStore'
import { requireKek, type AnnalistConfig } from './config'

/**
 * The process's key store (docs/erasure.md): wrapped keys in the PostgreSQL database, unwrapped with the configured
 * key-encryption keys and cached for ANNALIST_KEY_CACHE_SECONDS. Throws ConfigError naming ANNALIST_KEK when no KEK is
 * configured, before anything is read or written.
 */
export function openKeyStore(pool: pg.Pool, config: Pick<AnnalistConfig, 'kek' | 'keyCacheTtlMs'>): KeyStore {
  return new PostgresKeyStore(pool, { kek: requireKek(config), cacheTtlMs: config.keyCacheTtlMs })
}
