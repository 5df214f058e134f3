import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'

/** AES-256-GCM's key size in bytes: every key of the hierarchy (KEK, tenant key, data key) has it. */
export const KEY_BYTES = 32
/** The nonce size: 96 random bits per encryption, as GCM recommends. */
export const NONCE_BYTES = 12
const TAG_BYTES = 16

/** One AES-256-GCM encryption: the random nonce and the ciphertext with its 16-byte tag appended. */
export interface Sealed {
  readonly nonce: Buffer
  readonly ciphertext: Buffer
}

/** Thrown when a ciphertext does not open: wrong key, tampered bytes, or other additional data (say another tenant's row). */
export class SealBrokenError extends Error {
  constructor() {
    super('AES-256-GCM authentication failed (wrong key, altered ciphertext or other additional data)')
    this.name = 'SealBrokenError'
  }
}

/**
 * Encrypts `plaintext` under `key` with AES-256-GCM from node:crypto and a fresh random 96-bit nonce, binding
 * `additionalData` (key IDs, tenant, task) so that the ciphertext opens only in the same context.
 */
export function seal(key: Uint8Array, plaintext: Uint8Array, additionalData: string): Sealed {
  assertKey(key)
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(Buffer.from(additionalData, 'utf8'))
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
  return { nonce, ciphertext }
}

/** Decrypts what `seal` produced under the same key and additional data; throws SealBrokenError otherwise. */
export function open(key: Uint8Array, sealed: Sealed, additionalData: string): Buffer {
  assertKey(key)
  if (sealed.nonce.length !== NONCE_BYTES || sealed.ciphertext.length < TAG_BYTES) throw new SealBrokenError()
  const body = sealed.ciphertext.subarray(0, sealed.ciphertext.length - TAG_BYTES)
  const tag = sealed.ciphertext.subarray(sealed.ciphertext.length - TAG_BYTES)
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.nonce, { authTagLength: TAG_BYTES })
    decipher.setAAD(Buffer.from(additionalData, 'utf8'))
    decipher.setAuthTag(tag)
    return Buffer.concat([decipher.update(body), decipher.final()])
  } catch {
    throw new SealBrokenError()
  }
}

function assertKey(key: Uint8Array): void {
  if (key.length !== KEY_BYTES) throw new RangeError(`an AES-256 key has ${KEY_BYTES} bytes, not ${key.length}`)
}
