import { z } from 'zod'
import { Classification } from '../events/metadata'

/**
 * A payload reference's ID: a UUID (version 8, RFC 9562's custom layout) whose 122 free bits are the first bits of an
 * HMAC over (tenant, task, purpose, idempotency key) under the task's data key (payloadKeys.ts). Opaque to readers and
 * deterministic for the writer, which is what lets the EventStoreDB path write the payload first and append later.
 */
export const PayloadRefId = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'must be a lowercase version-8 UUID')
export type PayloadRefId = z.infer<typeof PayloadRefId>

/** A keyed content digest: HMAC-SHA256 under a key derived from the task's data key, so it dies with that key. Never a plain SHA-256. */
export const KeyedDigest = z.string().regex(/^hmac-sha256:[0-9a-f]{64}$/, 'must be "hmac-sha256:" and 64 lowercase hex characters')
export type KeyedDigest = z.infer<typeof KeyedDigest>

/**
 * What an event holds in place of content (docs/erasure.md, "Content references and the payload store"): the payload's
 * ref, its keyed digest and its classification. No length: the content and its exact size live only, padded and
 * encrypted, in the payload store.
 */
export const ContentRef = z.strictObject({ ref: PayloadRefId, digest: KeyedDigest, classification: Classification })
export type ContentRef = z.infer<typeof ContentRef>
