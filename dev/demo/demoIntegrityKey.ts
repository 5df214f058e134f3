import { generateIntegrityKey, TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { demoKeyFile } from './demoKeyFile'

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
  const file = demoKeyFile(dataDir, 'integrity.key', 'integrity key', generateIntegrityKey, (text) => TenantKeyRing.fromText(text))
  return { path: file.path, created: file.created, keyRing: file.key }
}
