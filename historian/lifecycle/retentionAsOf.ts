import { StreamTombstonedError, type EventStore, type ReadAllOptions, type ReadStreamOptions, type RecordedEvent } from '../port'
import { expiredAt } from './lifecycleState'

const DEFAULT_MAX_COUNT = 1_000

/**
 * The store as it will read at `at`: every read also hides the events that its stream's maxAge expires by then. The
 * store itself judges maxAge by its own clock, so for `at` later than now this is what its reads will show then (and for
 * an earlier `at`, nothing the store hides comes back). Used to rebuild read models "as of" a retention sweep's time
 * (projections/lifecycleSweep.ts). Writes and subscriptions go to the store unchanged; the store's contract is untouched.
 */
export function retentionAsOf(store: EventStore, at: Date): EventStore {
  const maxAges = new Map<string, Promise<number | undefined>>()
  const maxAgeOf = (stream: string): Promise<number | undefined> => {
    let known = maxAges.get(stream)
    if (!known) {
      known = store.getStreamMetadata(stream).then(
        (result) => result.metadata.maxAge,
        (error: unknown) => {
          if (error instanceof StreamTombstonedError) return undefined
          throw error
        },
      )
      maxAges.set(stream, known)
    }
    return known
  }
  const shown = async (events: readonly RecordedEvent[]): Promise<RecordedEvent[]> => {
    const kept: RecordedEvent[] = []
    for (const event of events) {
      const maxAge = await maxAgeOf(event.streamName)
      if (maxAge === undefined || !expiredAt(event.recordedAt, maxAge, at)) kept.push(event)
    }
    return kept
  }
  /** Reads pages after `after` until `maxCount` shown events are found or the log ends, so a short page still means "the end". */
  const readGlobal = async (read: (options: ReadAllOptions) => Promise<RecordedEvent[]>, options: ReadAllOptions = {}): Promise<RecordedEvent[]> => {
    const wanted = options.maxCount ?? DEFAULT_MAX_COUNT
    const result: RecordedEvent[] = []
    let after = options.after
    while (result.length < wanted) {
      const page = await read({ ...(after === undefined ? {} : { after }), maxCount: wanted })
      result.push(...(await shown(page)))
      if (page.length < wanted) break
      after = page.at(-1)!.position
    }
    return result.slice(0, wanted)
  }
  return {
    kind: store.kind,
    appendToStream: (stream, events, options) => store.appendToStream(stream, events, options),
    async readStream(stream: string, options: ReadStreamOptions = {}) {
      const wanted = options.maxCount ?? Number.MAX_SAFE_INTEGER
      const backwards = options.direction === 'backwards'
      const result: RecordedEvent[] = []
      let from = options.fromRevision
      for (;;) {
        const page = await store.readStream(stream, { ...options, ...(from === undefined ? {} : { fromRevision: from }) })
        result.push(...(await shown(page)))
        if (result.length >= wanted || page.length < wanted || page.length === 0) break
        const last = page.at(-1)!.revision
        if (backwards && last === 0n) break
        from = backwards ? last - 1n : last + 1n
      }
      return result.slice(0, wanted)
    },
    readTenantLog: (tenantId, options) => readGlobal((page) => store.readTenantLog(tenantId, page), options),
    // Walks the whole tenant log (no view reads its head yet): the newest event shown as of `at`, whichever that is.
    readTenantHead: async (tenantId) => (await readGlobal((page) => store.readTenantLog(tenantId, page), { maxCount: Number.MAX_SAFE_INTEGER })).at(-1),
    readEventType: (type, options) => readGlobal((page) => store.readEventType(type, page), options),
    readAll: (options) => readGlobal((page) => store.readAll(page), options),
    onAppend: (listener) => store.onAppend(listener),
    deleteStream: (stream, options) => store.deleteStream(stream, options),
    tombstoneStream: (stream, options) => store.tombstoneStream(stream, options),
    setStreamMetadata: (stream, metadata, options) => store.setStreamMetadata(stream, metadata, options),
    getStreamMetadata: (stream) => store.getStreamMetadata(stream),
    listLifecycleStreams: () => store.listLifecycleStreams(),
    close: () => store.close(),
  }
}
