/** The smallest padded size: every payload's plaintext is padded to at least this many bytes before encryption. */
export const MIN_PADDED_BYTES = 64
const LENGTH_PREFIX_BYTES = 4

/** Thrown when padded bytes do not hold what `padToBucket` wrote: the payload was altered or is not padded. */
export class PaddingError extends Error {
  constructor() {
    super('a payload\'s padded plaintext is malformed')
    this.name = 'PaddingError'
  }
}

/** The size a payload of `contentBytes` bytes is padded to: the next power of two that holds it and its 4-byte length, and at least MIN_PADDED_BYTES. */
export function paddedSize(contentBytes: number): number {
  let size = MIN_PADDED_BYTES
  while (size < contentBytes + LENGTH_PREFIX_BYTES) size *= 2
  return size
}

/**
 * `content` behind its length (4 bytes, big-endian) and zero-padded to `paddedSize`, so that the ciphertext's length
 * reveals only the bucket, not the exact length.
 */
export function padToBucket(content: Uint8Array): Buffer {
  if (content.length > 0xffff_ffff - LENGTH_PREFIX_BYTES) throw new RangeError('a payload holds at most 4 GiB')
  const padded = Buffer.alloc(paddedSize(content.length))
  padded.writeUInt32BE(content.length, 0)
  padded.set(content, LENGTH_PREFIX_BYTES)
  return padded
}

/** The content `padToBucket` padded; throws PaddingError when the length prefix or the padding is wrong. */
export function unpad(padded: Uint8Array): Buffer {
  const buffer = Buffer.from(padded.buffer, padded.byteOffset, padded.byteLength)
  if (buffer.length < MIN_PADDED_BYTES) throw new PaddingError()
  const length = buffer.readUInt32BE(0)
  if (paddedSize(length) !== buffer.length) throw new PaddingError()
  if (buffer.subarray(LENGTH_PREFIX_BYTES + length).some((byte) => byte !== 0)) throw new PaddingError()
  return Buffer.from(buffer.subarray(LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES + length))
}
