import path from 'node:path'
import { SigningKeyDirectoryError } from '../../historian/evidence/evidenceErrors'
import { FileSigningKeyStore } from '../../historian/evidence/fileSigningKeyStore'
import { ConfigError, emptyAsUnset } from './config'

/** The variable naming the directory of the evidence signing keys (docs/evidence.md). */
export const SIGNING_KEY_DIR_VARIABLE = 'ANNALIST_SIGNING_KEY_DIR'

/** The signing key directory from ANNALIST_SIGNING_KEY_DIR, as an absolute path; undefined when unset or blank. */
export function signingKeyDirFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = emptyAsUnset(env[SIGNING_KEY_DIR_VARIABLE]) as string | undefined
  return value === undefined ? undefined : path.resolve(value)
}

/** The signing key directory, for commands that cannot do without it; throws ConfigError naming the variable when unset. */
export function requireSigningKeyDir(env: NodeJS.ProcessEnv = process.env): string {
  const directory = signingKeyDirFromEnv(env)
  if (directory !== undefined) return directory
  throw new ConfigError(SIGNING_KEY_DIR_VARIABLE, 'not set; name the private directory (0700) that holds the evidence signing keys, e.g. /run/secrets/annalist-signing (docs/evidence.md)')
}

/** Runs `work`, turning a SigningKeyDirectoryError into the one-line ConfigError that names ANNALIST_SIGNING_KEY_DIR. */
export async function namingSigningKeyDir<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (error) {
    if (error instanceof SigningKeyDirectoryError) throw new ConfigError(SIGNING_KEY_DIR_VARIABLE, error.message)
    throw error
  }
}

/** The file signing key store at ANNALIST_SIGNING_KEY_DIR, or undefined when the variable is unset; refusals name the variable. */
export async function signingKeyStoreFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<FileSigningKeyStore | undefined> {
  const directory = signingKeyDirFromEnv(env)
  return directory === undefined ? undefined : namingSigningKeyDir(() => FileSigningKeyStore.open(directory))
}
