import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type { DataKey } from '../../historian/keys/keyStore'
import { ContentRef } from '../../historian/payloads/contentRef'
import { MIN_PADDED_BYTES, padToBucket, paddedSize, PaddingError, unpad } from '../../historian/payloads/padding'
import { digestMatches, keyedDigest, payloadRef } from '../../historian/payloads/payloadKeys'

const dataKey = (taskId: string): DataKey => ({ keyId: '00000000-0000-4000-8000-000000000001', tenantId: 'acme', taskId, key: randomBytes(32) })
const identity = { tenantId: 'acme', taskId: 'task-1', purpose: 'task-input', idempotencyKey: 'activity-7:attempt-1' }

describe('keyed content digests', () => {
  it('differ across tasks for the same content, are not its SHA-256, and verify only under their own key', () => {
    const content = Buffer.from('yes')
    const first = dataKey('task-1')
    const second = dataKey('task-2')
    const digest = keyedDigest(first, content)
    expect(digest).toMatch(/^hmac-sha256:[0-9a-f]{64}$/)
    expect(keyedDigest(first, content)).toBe(digest)
    expect(keyedDigest(second, content)).not.toBe(digest)
    expect(digest).not.toContain(createHash('sha256').update(content).digest('hex'))
    expect(digestMatches(first, content, digest)).toBe(true)
    expect(digestMatches(second, content, digest)).toBe(false)
    expect(digestMatches(first, Buffer.from('no'), digest)).toBe(false)
  })
})

describe('payload refs', () => {
  it('are deterministic for the same identity and key, and differ for another purpose, idempotency key or data key', () => {
    const key = dataKey('task-1')
    const ref = payloadRef(key, identity)
    expect(ContentRef.shape.ref.parse(ref)).toBe(ref)
    expect(payloadRef({ ...key, key: Buffer.from(key.key) }, { ...identity })).toBe(ref)
    expect(payloadRef(key, { ...identity, purpose: 'response-text' })).not.toBe(ref)
    expect(payloadRef(key, { ...identity, idempotencyKey: 'activity-7:attempt-2' })).not.toBe(ref)
    expect(payloadRef(dataKey('task-1'), identity)).not.toBe(ref)
  })

  it('are refused by the schema when malformed, and a ContentRef carries no length or extra field', () => {
    const ref = payloadRef(dataKey('task-1'), identity)
    const valid = { ref, digest: `hmac-sha256:${'a'.repeat(64)}`, classification: 'restricted' }
    expect(ContentRef.parse(valid)).toEqual(valid)
    for (const malformed of [
      { ...valid, ref: ref.toUpperCase() },
      // The version nibble (index 14) made 4: a random UUID, not one of ours.
      { ...valid, ref: `${ref.slice(0, 14)}4${ref.slice(15)}` },
      { ...valid, ref: 'task-input-1' },
      { ...valid, digest: 'a'.repeat(64) },
      { ...valid, digest: `sha256:${'a'.repeat(64)}` },
      { ...valid, classification: 'personal' },
      { ...valid, length: 3 },
    ]) {
      const result = ContentRef.safeParse(malformed)
      expect(result.success, JSON.stringify(malformed)).toBe(false)
      expect(result.error!.issues[0]!.message).not.toContain('\n')
    }
  })
})

describe('padding to a bucket', () => {
  it('pads to the next power of two that holds the content and its length, at least 64 bytes, and round-trips', () => {
    expect([0, 1, 60, 61, 124, 125, 1000].map(paddedSize)).toEqual([64, 64, 64, 128, 128, 256, 1024])
    for (const length of [0, 1, 60, 61, 500, 4096]) {
      const content = randomBytes(length)
      const padded = padToBucket(content)
      expect(padded.length).toBe(Math.max(MIN_PADDED_BYTES, 2 ** Math.ceil(Math.log2(length + 4))))
      expect(unpad(padded).equals(content)).toBe(true)
    }
    expect(padToBucket(Buffer.from('a')).length).toBe(padToBucket(Buffer.from('a'.repeat(50))).length)
  })

  it('refuses padded bytes whose length prefix or padding was altered', () => {
    const padded = padToBucket(Buffer.from('hello'))
    const longer = Buffer.from(padded)
    longer.writeUInt32BE(200, 0)
    const dirty = Buffer.from(padded)
    dirty[padded.length - 1] = 1
    for (const bad of [longer, dirty, padded.subarray(0, 32)]) expect(() => unpad(bad)).toThrow(PaddingError)
  })
})
