import { classifyRejectedAppend } from '../appendConflicts'
import { matchesExpectedRevision, validateAppendBatch } from '../appendRules'
import type { AppendResult, EventStore, ExpectedRevision, NewEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent, Unsubscribe } from '../port'

/**
 * A non-durable event store held in this process's memory. It is the benchmark's "without historian" baseline: the
 * pipeline still needs to read back what its steps produced, so the baseline keeps events, but writes nothing anywhere.
 * Never use it where events must survive: a restart loses them all.
 */
export class InMemoryEventStore implements EventStore {
  readonly kind = 'memory' as const
  readonly notifiesOnAppend = false
  private readonly streams = new Map<string, RecordedEvent[]>()
  private readonly log: RecordedEvent[] = []

  async appendToStream(stream: string, events: readonly NewEvent[], options: { expectedRevision: ExpectedRevision }): Promise<AppendResult> {
    const batch = validateAppendBatch(stream, events)
    const stored = this.streams.get(stream) ?? []
    const current = stored[stored.length - 1]?.revision
    const ids = new Set(stored.map((event) => event.eventId))
    if (!matchesExpectedRevision(options.expectedRevision, current) || batch.some((event) => ids.has(event.eventId))) {
      return classifyRejectedAppend(stream, batch, options.expectedRevision, stored)
    }
    for (const event of batch) {
      const recorded: RecordedEvent = { ...event, streamName: stream, revision: BigInt(stored.length), position: BigInt(this.log.length + 1), recordedAt: new Date() }
      stored.push(recorded)
      this.log.push(recorded)
    }
    this.streams.set(stream, stored)
    const last = stored[stored.length - 1]!
    return { nextExpectedRevision: last.revision, position: last.position, written: true }
  }

  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    const stored = this.streams.get(stream) ?? []
    const ordered = options.direction === 'backwards' ? [...stored].reverse() : stored
    const from = options.fromRevision
    const selected = from === undefined ? ordered : ordered.filter((event) => (options.direction === 'backwards' ? event.revision <= from : event.revision >= from))
    return selected.slice(0, options.maxCount ?? Number.MAX_SAFE_INTEGER)
  }

  private select(filter: (event: RecordedEvent) => boolean, options: ReadAllOptions = {}): RecordedEvent[] {
    const after = options.after ?? 0n
    return this.log.filter((event) => event.position > after && filter(event)).slice(0, options.maxCount ?? 1_000)
  }

  async readTenantLog(tenantId: string, options?: ReadAllOptions): Promise<RecordedEvent[]> {
    return this.select((event) => event.streamName.startsWith(`tenant_${tenantId}-`), options)
  }

  async readEventType(type: string, options?: ReadAllOptions): Promise<RecordedEvent[]> {
    return this.select((event) => event.type === type, options)
  }

  async readAll(options?: ReadAllOptions): Promise<RecordedEvent[]> {
    return this.select(() => true, options)
  }

  async onAppend(): Promise<Unsubscribe> {
    return async () => undefined
  }

  async close(): Promise<void> {}
}
