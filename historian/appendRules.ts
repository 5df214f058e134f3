import type { NewEvent } from './port'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/**
 * Checks a batch before any I/O and returns it with event IDs in canonical lowercase (PostgreSQL returns uuids that
 * way, and the conflict classification compares IDs as strings). An empty batch is refused with a RangeError, by every
 * adapter: there is nothing to append, and no revision to report for a stream that does not exist. Pure, and shared by
 * every adapter so they refuse the same batches.
 */
export function validateAppendBatch(stream: string, events: readonly NewEvent[]): NewEvent[] {
  assertStreamName(stream)
  if (!Array.isArray(events) || events.length === 0) throw new RangeError(`appendToStream(${stream}): empty batch; nothing to append`)
  const seen = new Set<string>()
  return events.map((event, index) => {
    const eventId = typeof event.eventId === 'string' ? event.eventId.toLowerCase() : ''
    if (!UUID.test(eventId)) throw new RangeError(`appendToStream(${stream}): event ${index} has event ID ${JSON.stringify(event.eventId)}, not a UUID`)
    if (seen.has(eventId)) throw new RangeError(`appendToStream(${stream}): event ID ${eventId} appears twice in one batch`)
    seen.add(eventId)
    if (typeof event.type !== 'string' || event.type === '') throw new RangeError(`appendToStream(${stream}): event ${eventId} has no type`)
    if (typeof event.metadata !== 'object' || event.metadata === null || Array.isArray(event.metadata)) {
      throw new RangeError(`appendToStream(${stream}): event ${eventId} metadata must be an object`)
    }
    return { ...event, eventId }
  })
}

export function assertStreamName(stream: string): void {
  if (typeof stream !== 'string' || stream === '') throw new RangeError('the stream name must be a non-empty string')
}

