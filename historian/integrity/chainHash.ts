import { createHmac } from 'node:crypto'
import canonicalize from 'canonicalize'
import { EventIntegrity } from '../events/metadata'

/** What an event's hash covers besides the previous hash: where it sits, what it is, and everything it says. */
export interface ChainedContent {
  readonly streamName: string
  readonly revision: bigint
  readonly eventId: string
  readonly type: string
  readonly data: unknown
  /** The event's metadata; its `integrity` field, if any, is left out of the hash. */
  readonly metadata: Readonly<Record<string, unknown>>
}

/**
 * The RFC 8785 (JCS) canonical JSON of a value: keys sorted, no whitespace, numbers in ECMAScript's shortest form.
 * PostgreSQL's jsonb reorders keys and may rewrite numbers (1e-7 comes back as 0.0000001), but a value read back
 * from jsonb canonicalizes to the same text as the value written, so writer and verifier hash the same bytes.
 */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value)
  if (text === undefined) throw new RangeError('canonicalJson: the value has no JSON form')
  return text
}

/** The anchor of a stream's chain, revision 0's `prevHash`: HMAC-SHA256(tenantKey, "anchor:" + streamName), hex. */
export function anchorHash(tenantKey: Uint8Array, streamName: string): string {
  return createHmac('sha256', tenantKey).update(`anchor:${streamName}`).digest('hex')
}

/** An event's `hash`: HMAC-SHA256(tenantKey, prevHash || canonicalJson(content without metadata.integrity)), hex. */
export function linkHash(tenantKey: Uint8Array, prevHash: string, content: ChainedContent): string {
  const { integrity: _ignored, ...metadata } = content.metadata
  const canonical = canonicalJson({
    streamName: content.streamName,
    revision: content.revision.toString(),
    eventId: content.eventId,
    type: content.type,
    data: content.data,
    metadata,
  })
  return createHmac('sha256', tenantKey).update(prevHash).update(canonical).digest('hex')
}

/** The integrity link stored in an event's metadata, or undefined when it is absent or malformed. */
export function storedIntegrity(metadata: Readonly<Record<string, unknown>> | undefined): EventIntegrity | undefined {
  const parsed = EventIntegrity.safeParse(metadata?.integrity)
  return parsed.success ? parsed.data : undefined
}
