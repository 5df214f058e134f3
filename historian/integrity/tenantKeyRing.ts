import { hkdfSync, randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { assertTenantId } from '../streams'

/** The shortest master integrity key accepted: 32 bytes, the output size of SHA-256. */
export const MIN_INTEGRITY_KEY_BYTES = 32

const HEX = /^(?:[0-9a-fA-F]{2})+$/
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/

/**
 * Decodes a master integrity key written as hex (tried first) or base64 (standard or URL-safe), and checks it is at
 * least 32 bytes. Throws a RangeError that says what is wrong without echoing the key.
 */
export function parseIntegrityKey(text: string): Buffer {
  const trimmed = text.trim()
  if (trimmed === '') throw new RangeError('is empty; expected a key of at least 32 bytes written as hex or base64')
  let key: Buffer
  if (HEX.test(trimmed)) key = Buffer.from(trimmed, 'hex')
  else if (BASE64.test(trimmed)) key = Buffer.from(trimmed, 'base64') // Node's base64 decoder also reads the URL-safe alphabet
  else throw new RangeError('is neither hex nor base64; expected a key of at least 32 bytes written as hex or base64')
  if (key.length < MIN_INTEGRITY_KEY_BYTES) {
    throw new RangeError(`decodes to ${key.length} bytes; at least ${MIN_INTEGRITY_KEY_BYTES} are needed (e.g. \`openssl rand -hex 32\`)`)
  }
  return key
}

/** A fresh random master integrity key, as 64 hex characters. */
export function generateIntegrityKey(): string {
  return randomBytes(MIN_INTEGRITY_KEY_BYTES).toString('hex')
}

/**
 * The tenant-scoped HMAC keys of the hash chains, derived from one master key with HKDF-SHA256
 * (info `annalist:tenant:<tenantId>`, no salt), so one tenant's key never verifies another tenant's streams and no
 * tenant key reveals the master. The master key never leaves this object: it prints and serializes as redacted.
 */
export class TenantKeyRing {
  readonly #master: Buffer
  readonly #tenantKeys = new Map<string, Buffer>()

  constructor(masterKey: Uint8Array) {
    if (masterKey.length < MIN_INTEGRITY_KEY_BYTES) throw new RangeError(`integrity key: ${masterKey.length} bytes; at least ${MIN_INTEGRITY_KEY_BYTES} are needed`)
    this.#master = Buffer.from(masterKey)
  }

  /** A key ring over a master key written as hex or base64 (see parseIntegrityKey). */
  static fromText(text: string): TenantKeyRing {
    return new TenantKeyRing(parseIntegrityKey(text))
  }

  /** The HMAC key of one tenant's hash chains. */
  keyFor(tenantId: string): Buffer {
    const tenant = assertTenantId(tenantId)
    let key = this.#tenantKeys.get(tenant)
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.#master, Buffer.alloc(0), `annalist:tenant:${tenant}`, 32))
      this.#tenantKeys.set(tenant, key)
    }
    return key
  }

  toJSON(): string {
    return 'TenantKeyRing [redacted]'
  }

  [inspect.custom](): string {
    return 'TenantKeyRing [redacted]'
  }
}
