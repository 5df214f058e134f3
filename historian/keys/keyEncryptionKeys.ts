import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { KEY_BYTES } from './aesGcm'

/** The variable that holds the key-encryption keys, and the one that names a file holding them instead. */
export const KEK_VARIABLE = 'ANNALIST_KEK'
export const KEK_FILE_VARIABLE = 'ANNALIST_KEK_FILE'

const ENTRY = /^(?:(\d{1,9}):)?([0-9a-fA-F]*)$/

/**
 * Parses the key-encryption keys: comma-separated `<version>:<key>` entries, each key exactly 32 bytes written as 64 hex
 * characters (hex only: `openssl rand -hex 32`); a single bare key is version 1. The highest version is current and
 * wraps; older ones only unwrap, until `annalist keys rewrap` has moved every tenant key off them. Throws a RangeError
 * that says what is wrong without echoing any key.
 */
export function parseKekText(text: string): Map<number, Buffer> {
  const entries = text.trim().split(',').map((entry) => entry.trim())
  if (entries.length === 1 && entries[0] === '') throw new RangeError('is empty; expected 32 bytes as 64 hex characters, or comma-separated <version>:<64 hex> entries')
  const versions = new Map<number, Buffer>()
  entries.forEach((entry, index) => {
    const where = entries.length === 1 ? 'the key' : `entry ${index + 1}`
    const match = ENTRY.exec(entry)
    if (!match) throw new RangeError(`${where} is not <version>:<64 hex characters> (keys are hex, e.g. \`openssl rand -hex 32\`)`)
    if (match[1] === undefined && entries.length > 1) throw new RangeError(`${where} has no version; with several keys write each as <version>:<64 hex characters>`)
    const version = match[1] === undefined ? 1 : Number(match[1])
    if (version < 1) throw new RangeError(`${where} has version 0; versions are whole numbers from 1`)
    if (match[2]!.length !== KEY_BYTES * 2) throw new RangeError(`${where} has ${match[2]!.length} hex characters; a key is exactly ${KEY_BYTES * 2} (32 bytes, e.g. \`openssl rand -hex 32\`)`)
    if (versions.has(version)) throw new RangeError(`version ${version} appears twice`)
    versions.set(version, Buffer.from(match[2]!, 'hex'))
  })
  return versions
}

/** A fresh random key-encryption key, as 64 hex characters. */
export function generateKek(): string {
  return randomBytes(KEY_BYTES).toString('hex')
}

/**
 * The configured key-encryption keys by version. `source` names the variable they came from, so that every error about
 * them (a missing version, a key that unwraps nothing) names it. The keys never leave this object: it prints and
 * serializes as redacted.
 */
export class KekRing {
  readonly #keys: ReadonlyMap<number, Buffer>
  /** The version that wraps: the highest configured. */
  readonly currentVersion: number

  constructor(
    keys: ReadonlyMap<number, Uint8Array>,
    readonly source: string = KEK_VARIABLE,
  ) {
    if (keys.size === 0) throw new RangeError('a KEK ring needs at least one version')
    for (const [version, key] of keys) {
      if (key.length !== KEY_BYTES) throw new RangeError(`KEK version ${version}: ${key.length} bytes; exactly ${KEY_BYTES} are needed`)
    }
    this.#keys = new Map([...keys].map(([version, key]) => [version, Buffer.from(key)]))
    this.currentVersion = Math.max(...keys.keys())
  }

  /** A ring over text in the format of parseKekText. */
  static fromText(text: string, source?: string): KekRing {
    return new KekRing(parseKekText(text), source)
  }

  /** Every configured version, ascending. */
  get versions(): readonly number[] {
    return [...this.#keys.keys()].sort((a, b) => a - b)
  }

  /** The key of `version`, or undefined when it is not configured. */
  key(version: number): Buffer | undefined {
    return this.#keys.get(version)
  }

  toJSON(): string {
    return 'KekRing [redacted]'
  }

  [inspect.custom](): string {
    return 'KekRing [redacted]'
  }
}
