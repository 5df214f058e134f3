/** Thrown when an append must extend a hash chain but the Historian was built without an integrity key ring. */
export class MissingIntegrityKeyError extends Error {
  constructor(readonly stream: string) {
    super(
      `cannot append to ${stream}: no integrity key is configured; set ANNALIST_INTEGRITY_KEY (at least 32 bytes, hex or base64) or ANNALIST_INTEGRITY_KEY_FILE`,
    )
    this.name = 'MissingIntegrityKeyError'
  }
}

/** Thrown when an append cannot extend a stream's hash chain: the event it would follow carries no integrity hash. */
export class ChainTailError extends Error {
  constructor(
    readonly stream: string,
    readonly revision: bigint,
  ) {
    super(`cannot append to ${stream}: its event at revision ${revision} has no integrity hash to chain from (written before tamper evidence, or edited)`)
    this.name = 'ChainTailError'
  }
}
