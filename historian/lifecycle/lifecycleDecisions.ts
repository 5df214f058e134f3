import { StreamLifecycleDecided } from '../events'
import type { StoredEvent } from '../historian'
import type { EventStore } from '../port'
import { complianceStreamTenant, parseTaskStreamName } from '../streams'
import { toStoredEvent } from '../historian'
import type { RecordedDecision } from './lifecycleState'

const DECISION_TYPE: StreamLifecycleDecided['type'] = 'StreamLifecycleDecided'
const PAGE = 1_000

/** The decision a stored event records, if it is a StreamLifecycleDecided of a compliance stream about its own tenant. */
export function decisionOf(stored: StoredEvent): RecordedDecision | undefined {
  const { event } = stored
  if (event.type !== DECISION_TYPE) return undefined
  const tenant = complianceStreamTenant(stored.streamName)
  // Only a tenant's own compliance stream may decide about that tenant's task streams.
  if (tenant === undefined || tenant !== event.metadata.tenantId) return undefined
  try {
    if (parseTaskStreamName(event.data.targetStream).tenantId !== tenant) return undefined
  } catch {
    return undefined
  }
  return { position: stored.position, recordedAt: stored.recordedAt, data: event.data }
}

/**
 * Every recorded lifecycle decision, by target stream, each stream's in log order: read from the whole log by event
 * type (every tenant's compliance stream), keeping only decisions recorded where decisionOf accepts them.
 */
export async function readAllDecisions(store: EventStore): Promise<Map<string, RecordedDecision[]>> {
  const byStream = new Map<string, RecordedDecision[]>()
  let after: bigint | undefined
  for (;;) {
    const page = await store.readEventType(DECISION_TYPE, { ...(after === undefined ? {} : { after }), maxCount: PAGE })
    for (const recorded of page) {
      const decision = decisionOf(toStoredEvent(recorded))
      if (!decision) continue
      const list = byStream.get(decision.data.targetStream) ?? []
      list.push(decision)
      byStream.set(decision.data.targetStream, list)
    }
    if (page.length < PAGE) return byStream
    after = page.at(-1)!.position
  }
}
