import type { AnnalistEvent } from '../../historian/events'
import type { StoredEvent } from '../../historian/historian'

/** The stored events of one type, typed as that type. */
export function eventsOfType<T extends AnnalistEvent['type']>(events: readonly StoredEvent[], type: T): StoredEvent<Extract<AnnalistEvent, { type: T }>>[] {
  return events.filter((stored): stored is StoredEvent<Extract<AnnalistEvent, { type: T }>> => stored.event.type === type)
}
