import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import type { DataKey } from '../keys/keyStore'
import type { KeyedDigest, PayloadRefId } from './contentRef'

/** The HKDF info labels that separate the keys derived from one data key: one for digests, one for refs. */
const DIGEST_KEY_INFO = 'annalist:payload-digest:v1'
const REF_KEY_INFO = 'annalist:payload-ref:v1'

/** A 32-byte key derived from the task's data key with HKDF-SHA256 and a fixed label, so no derived key equals the encryption key. */
function derivedKey(dataKey: DataKey, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', dataKey.key, Buffer.alloc(0), info, 32))
}

/** The keyed digest of `content`: HMAC-SHA256 under the task's digest key. Another task's digest of the same content differs. */
export function keyedDigest(dataKey: DataKey, content: Uint8Array): KeyedDigest {
  return `hmac-sha256:${createHmac('sha256', derivedKey(dataKey, DIGEST_KEY_INFO)).update(content).digest('hex')}`
}

/** Whether `digest` is the keyed digest of `content` under `dataKey`, compared in constant time. */
export function digestMatches(dataKey: DataKey, content: Uint8Array, digest: string): boolean {
  const expected = Buffer.from(keyedDigest(dataKey, content))
  const given = Buffer.from(digest)
  return expected.length === given.length && timingSafeEqual(expected, given)
}

/** What a payload is written for: its task, what it is (`purpose`, e.g. `task-input`) and the caller's idempotency key. */
export interface PayloadIdentity {
  readonly tenantId: string
  readonly taskId: string
  readonly purpose: string
  readonly idempotencyKey: string
}

/**
 * The payload's deterministic ref: a version-8 UUID from an HMAC over its identity under the task's ref key. The same
 * identity under the same data key always gives the same ref; without the key nobody can tell what a ref stands for.
 */
export function payloadRef(dataKey: DataKey, identity: PayloadIdentity): PayloadRefId {
  const message = JSON.stringify(['annalist:payload:v1', identity.tenantId, identity.taskId, identity.purpose, identity.idempotencyKey])
  const bytes = createHmac('sha256', derivedKey(dataKey, REF_KEY_INFO)).update(message).digest().subarray(0, 16)
  bytes[6] = (bytes[6]! & 0x0f) | 0x80
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}
