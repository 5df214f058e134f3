/**
 * A map whose entries expire `ttlMs` after they were set, on a clock the caller gives (tests move it; nothing sleeps).
 * Entries are kept in the order they were set, which with one lifetime for all is the order they expire in, so every
 * call first drops the expired ones from the front: an expired key does not linger in the map until it is asked for.
 */
export class ExpiringCache<V> {
  readonly #entries = new Map<string, { readonly value: V; readonly expiresAt: number }>()

  constructor(
    readonly ttlMs: number,
    private readonly now: () => number,
  ) {
    if (!Number.isFinite(ttlMs) || ttlMs < 0) throw new RangeError(`a cache lifetime is 0 or more milliseconds, not ${ttlMs}`)
  }

  /** The value set under `key`, unless it has expired. */
  get(key: string): V | undefined {
    this.#dropExpired()
    return this.#entries.get(key)?.value
  }

  /** Keeps `value` for `ttlMs` from now; with a lifetime of 0 it keeps nothing. */
  set(key: string, value: V): void {
    this.#dropExpired()
    if (this.ttlMs === 0) return
    this.#entries.delete(key) // to the back of the expiry order
    this.#entries.set(key, { value, expiresAt: this.now() + this.ttlMs })
  }

  /** Drops every entry whose value matches. */
  deleteWhere(matches: (value: V) => boolean): void {
    for (const [key, entry] of this.#entries) if (matches(entry.value)) this.#entries.delete(key)
  }

  /** How many entries are held, expired ones not counted. */
  get size(): number {
    this.#dropExpired()
    return this.#entries.size
  }

  #dropExpired(): void {
    const now = this.now()
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt > now) return
      this.#entries.delete(key)
    }
  }
}
