import type { AppendResult, EventStore, ExpectedRevision, NewEvent, RecordedEvent, Unsubscribe } from '../port'

/** An event store that keeps nothing: appends succeed and are discarded, reads return []. The benchmark's "without historian" baseline. */
export class NoopEventStore implements EventStore {
  readonly kind = 'noop' as const
  /** Nothing is stored, so nothing is ever announced. */
  readonly notifiesOnAppend = false
  private position = 0n

  async appendToStream(stream: string, events: readonly NewEvent[], options: { expectedRevision: ExpectedRevision }): Promise<AppendResult> {
    if (events.length === 0) throw new RangeError(`appendToStream(${stream}): empty batch; nothing to append`)
    // Plausible numbers: revisions continue from the expected one, positions count up in this process.
    const expected = options.expectedRevision
    const first = typeof expected === 'bigint' ? expected + 1n : 0n
    this.position += BigInt(events.length)
    return { nextExpectedRevision: first + BigInt(events.length) - 1n, position: this.position, written: true }
  }

  async readStream(): Promise<RecordedEvent[]> {
    return []
  }

  async readTenantLog(): Promise<RecordedEvent[]> {
    return []
  }

  async readEventType(): Promise<RecordedEvent[]> {
    return []
  }

  async readAll(): Promise<RecordedEvent[]> {
    return []
  }

  async onAppend(): Promise<Unsubscribe> {
    return async () => undefined
  }

  async close(): Promise<void> {}
}
