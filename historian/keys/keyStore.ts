/**
 * The key hierarchy's port (docs/erasure.md): a key-encryption key (KEK) wraps one key per tenant, and the tenant key
 * wraps one data key per task. Content, payloads and keyed digests use the data key; callers never see the other keys.
 * PostgresKeyStore (postgresKeyStore.ts) is the default implementation; docs/erasure.md maps it to a cloud KMS.
 */

/** A task's unwrapped data key and its ID, which every ciphertext under it carries. */
export interface DataKey {
  readonly keyId: string
  readonly tenantId: string
  readonly taskId: string
  /** 32 bytes for AES-256-GCM (aesGcm.ts) and keyed digests. Never log or persist it. */
  readonly key: Buffer
}

/** What a destruction removed: the IDs of the keys that no longer exist. */
export interface KeyDestruction {
  readonly tenantId: string
  /** The task whose keys were destroyed; null for the whole tenant. */
  readonly taskId: string | null
  readonly destroyedKeyIds: readonly string[]
}

/** A rewrap's progress after each batch. */
export interface RewrapProgress {
  readonly rewrapped: number
  readonly remaining: number
}

/** What `rewrap` did: how many tenant keys it moved, and the KEK versions it retired. */
export interface RewrapResult {
  readonly kekVersion: number
  readonly rewrapped: number
  readonly retiredVersions: readonly number[]
}

/** Where wrapped keys live and how they are unwrapped. */
export interface KeyStore {
  /** The task's current data key, created (under the tenant's current key) on first use; concurrent callers get the same key. */
  dataKeyFor(tenantId: string, taskId: string): Promise<DataKey>
  /** A data key by the ID a ciphertext carries, current or not; throws UnknownKeyError or KeyDestroyedError. */
  dataKeyById(keyId: string): Promise<DataKey>
  /** Starts a new current key for the tenant: data keys of tasks that get their first key from now on are wrapped by it. Old keys keep unwrapping. */
  rotateTenantKey(tenantId: string): Promise<{ readonly keyId: string; readonly previousKeyId: string | null }>
  /** Re-wraps every tenant key under the current KEK version in batches (resumable), then records the older versions as retired. */
  rewrap(options?: { readonly batchSize?: number; readonly onProgress?: (progress: RewrapProgress) => void }): Promise<RewrapResult>
  /** Destroys the task's data keys and records the destruction; no new data key is ever made for that task. Idempotent. */
  destroyTaskKeys(tenantId: string, taskId: string): Promise<KeyDestruction>
  /** Destroys every key of the tenant (tenant keys and all data keys) and records it; the tenant gets no new keys. Idempotent. */
  destroyTenantKeys(tenantId: string): Promise<KeyDestruction>
}

/** Thrown when a key was destroyed (crypto-shredding): the data it protected can no longer be decrypted, by design. */
export class KeyDestroyedError extends Error {
  constructor(
    readonly tenantId: string,
    readonly taskId: string | null,
    readonly destroyedAt: Date,
  ) {
    super(`the keys of ${taskId === null ? `tenant ${JSON.stringify(tenantId)}` : `task ${JSON.stringify(taskId)} of tenant ${JSON.stringify(tenantId)}`} were destroyed at ${destroyedAt.toISOString()}: its encrypted content is erased and no new key is made for it`)
    this.name = 'KeyDestroyedError'
  }
}

/** Thrown when no key with an ID exists and none was ever destroyed under it. */
export class UnknownKeyError extends Error {
  constructor(readonly keyId: string) {
    super(`no data key ${JSON.stringify(keyId.slice(0, 64))} exists or ever existed in this key store`)
    this.name = 'UnknownKeyError'
  }
}

/**
 * Thrown when the configured key-encryption keys cannot do what is asked: a version is missing, retired or older than
 * one in use, or a key does not unwrap what it should (a wrong key). The message starts with the variable they came from.
 */
export class KekError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`)
    this.name = 'KekError'
  }
}

/** Thrown when a wrapped key's bytes fail authentication under a KEK or tenant key that does unwrap other keys: the row was altered or moved. */
export class WrappedKeyTamperedError extends Error {
  constructor(readonly keyId: string) {
    super(`wrapped key ${keyId} does not unwrap: its row was altered or moved to another tenant or task`)
    this.name = 'WrappedKeyTamperedError'
  }
}
