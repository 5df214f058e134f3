import { open, seal } from './aesGcm'
import type { DataKey, KeyStore } from './keyStore'

/** Content encrypted under a task's data key: the key's ID travels with it, so decrypting needs no other context. */
export interface EncryptedContent {
  readonly keyId: string
  readonly nonce: Buffer
  readonly ciphertext: Buffer
}

/** Thrown when content names a data key of another tenant or task than the caller expects. */
export class ContentKeyMismatchError extends Error {
  constructor(readonly keyId: string) {
    super(`content under data key ${keyId} belongs to another tenant or task than the one asked for`)
    this.name = 'ContentKeyMismatchError'
  }
}

/** The additional data content is bound to: its data key, tenant and task, and what the caller says it is (`purpose`, e.g. a payload ref). */
const contentContext = (key: Pick<DataKey, 'keyId' | 'tenantId' | 'taskId'>, purpose: string) => JSON.stringify(['annalist:content:v1', key.keyId, key.tenantId, key.taskId, purpose])

/** Encrypts `plaintext` under the task's data key (AES-256-GCM, random nonce), bound to `purpose`. */
export function encryptContent(dataKey: DataKey, plaintext: Uint8Array, purpose: string): EncryptedContent {
  const sealed = seal(dataKey.key, plaintext, contentContext(dataKey, purpose))
  return { keyId: dataKey.keyId, nonce: sealed.nonce, ciphertext: sealed.ciphertext }
}

/**
 * Decrypts content of `tenantId`/`taskId` with the data key its ID names. Throws KeyDestroyedError once that key was
 * destroyed (the content is erased), ContentKeyMismatchError for another tenant's or task's key, and SealBrokenError
 * for altered bytes or another `purpose`.
 */
export async function decryptContent(keys: Pick<KeyStore, 'dataKeyById'>, content: EncryptedContent, expected: { tenantId: string; taskId: string; purpose: string }): Promise<Buffer> {
  const dataKey = await keys.dataKeyById(content.keyId)
  if (dataKey.tenantId !== expected.tenantId || dataKey.taskId !== expected.taskId) throw new ContentKeyMismatchError(content.keyId)
  return open(dataKey.key, { nonce: content.nonce, ciphertext: content.ciphertext }, contentContext(dataKey, expected.purpose))
}
