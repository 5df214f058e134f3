import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { generateIntegrityKey, TenantKeyRing } from '../../historian/integrity/tenantKeyRing'

/** The demo's own integrity key: where it is kept, whether this run created it, and the key ring over it. */
export interface DemoIntegrityKey {
  readonly path: string
  readonly created: boolean
  readonly keyRing: TenantKeyRing
}

/**
 * The integrity key the demo uses when none is configured: `<dataDir>/integrity.key`, created once with a random key
 * (mode 0600, never overwritten; a data directory it creates is 0700) and read again by later runs, so `annalist verify` can check every demo run's streams.
 */
export function demoIntegrityKey(dataDir: string): DemoIntegrityKey {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const keyPath = path.join(dataDir, 'integrity.key')
  let created = false
  try {
    writeFileSync(keyPath, `${generateIntegrityKey()}\n`, { flag: 'wx', mode: 0o600 })
    created = true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
  try {
    return { path: keyPath, created, keyRing: TenantKeyRing.fromText(readFileSync(keyPath, 'utf8')) }
  } catch (error) {
    throw new Error(`the demo's integrity key file ${keyPath} ${(error as Error).message}; fix or delete it`, { cause: error })
  }
}
