/** A map whose entries expire `ttlMs` after they were set, on a clock the caller gives (tests move it; nothing sleeps). */
export class ExpiringCache<V> {
  readonly #entries = new Map<string, { readonly value: V; readonly expiresAt: number }>()

  constructor(
    readonly ttlMs: number,
    private readonly now: () => number,
  ) {
    if (!Number.isFinite(ttlMs) || ttlMs < 0) throw new RangeError(`a cache lifetime is 0 or more milliseconds, not ${ttlMs}`)
  }

  /** The value set under `key`, unless it has expired (then it is dropped). */
  get(key: string): V | undefined {
    const entry = this.#entries.get(key)
    if (!entry) return undefined
    if (this.now() < entry.expiresAt) return entry.value
    this.#entries.delete(key)
    return undefined
  }

  /** Keeps `value` for `ttlMs` from now; with a lifetime of 0 it keeps nothing. */
  set(key: string, value: V): void {
    if (this.ttlMs > 0) this.#entries.set(key, { value, expiresAt: this.now() + this.ttlMs })
  }

  /** Drops every entry whose value matches. */
  deleteWhere(matches: (value: V) => boolean): void {
    for (const [key, entry] of this.#entries) if (matches(entry.value)) this.#entries.delete(key)
  }
}
