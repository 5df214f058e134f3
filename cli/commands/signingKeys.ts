import path from 'node:path'
import { FileSigningKeyStore, initSigningKeyDirectory, rotateSigningKey, type SigningKeyChange } from '../../historian/evidence/fileSigningKeyStore'
import { authorizeCallerOnce } from '../runtime/callerPermission'
import { loadConfig } from '../runtime/config'
import { withFileLock } from '../runtime/fileLock'
import { namingSigningKeyDir, requireSigningKeyDir } from '../runtime/signingKeyConfig'

/** How long a key change waits for another one on the same directory. */
const LOCK_WAIT_MS = 30_000

/**
 * Checks the caller's key (signingKeys.manage, ANNALIST_API_KEY) before anything is written, then changes the directory
 * at ANNALIST_SIGNING_KEY_DIR holding its lock file, so two changes never interleave.
 */
async function changeSigningKeys(change: (directory: string) => Promise<SigningKeyChange>): Promise<SigningKeyChange> {
  const directory = requireSigningKeyDir()
  await authorizeCallerOnce(loadConfig(), 'signingKeys.manage', null)
  return namingSigningKeyDir(() => change(directory))
}

const lockOf = (directory: string) => path.join(directory, '.change.lock')

/** `annalist keys signing init`: creates the private signing key directory and its first key. */
export async function signingKeysInitCommand(): Promise<void> {
  const { current } = await changeSigningKeys((directory) => initSigningKeyDirectory(directory))
  console.log(`signing key ${current.kid} created and current (publish it with \`annalist keys public\`)`)
}

/** `annalist keys signing rotate`: a new current key; the old one is retired but stays published for verification. */
export async function signingKeysRotateCommand(): Promise<void> {
  const { current, retired } = await changeSigningKeys(async (directory) => {
    await FileSigningKeyStore.open(directory)
    return withFileLock(lockOf(directory), { what: 'signing key change', waitLimitMs: LOCK_WAIT_MS, onWait: (line) => console.error(line) }, () => rotateSigningKey(directory))
  })
  console.log(`signing key ${current.kid} created and current; ${retired!.kid} retired (still published, so what it signed still verifies)`)
}

/** `annalist keys public`: the published signing keys as a JWK Set, current and retired, for verifiers. */
export async function keysPublicCommand(): Promise<void> {
  const directory = requireSigningKeyDir()
  const keys = await namingSigningKeyDir(async () => (await FileSigningKeyStore.open(directory)).publicKeys())
  console.log(JSON.stringify(keys, null, 2))
}
