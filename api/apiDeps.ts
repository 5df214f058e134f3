import type pg from 'pg'
import type { TenantKeyRing } from '../historian/integrity/tenantKeyRing'
import type { EventStore } from '../historian/port'

/** What the API's routes read from: the read-model database, the event store (exports, lag) and the chain keys. */
export interface ApiDeps {
  readonly pool: pg.Pool
  readonly store: EventStore
  readonly keyRing: TenantKeyRing
  /** The clock for default time windows and lag; unset: the system clock (the database clock for lag). */
  readonly now?: () => Date
}
