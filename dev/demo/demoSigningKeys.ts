import { existsSync } from 'node:fs'
import path from 'node:path'
import { FileSigningKeyStore, initSigningKeyDirectory, SIGNING_KEY_STATE_FILE } from '../../historian/evidence/fileSigningKeyStore'

/** The demo's own evidence signing keys: where they are kept, whether this run created them, and the store over them. */
export interface DemoSigningKeys {
  readonly directory: string
  readonly created: boolean
  readonly store: FileSigningKeyStore
}

/**
 * The signing key directory the demo uses when ANNALIST_SIGNING_KEY_DIR is not set: `<dataDir>/signing-keys`, created
 * once (0700, its first key 0600) and reused by later runs, as the demo does for the integrity key.
 */
export async function demoSigningKeys(dataDir: string): Promise<DemoSigningKeys> {
  const directory = path.join(dataDir, 'signing-keys')
  const created = !existsSync(path.join(directory, SIGNING_KEY_STATE_FILE))
  if (created) await initSigningKeyDirectory(directory)
  try {
    return { directory, created, store: await FileSigningKeyStore.open(directory) }
  } catch (error) {
    throw new Error(`the demo's signing key directory ${(error as Error).message}; fix or delete it`, { cause: error })
  }
}
