import { Historian } from '../../historian/historian'
import { openDatabase, type Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { EsdbEventStore } from '../../historian/adapters/esdb/esdbEventStore'
import type { EventStore } from '../../historian/port'
import type { AnnalistConfig } from './config'

/** A process's storage: the PostgreSQL database (read models, outbox; the event log unless EventStoreDB is configured) and the event store. */
export interface Storage {
  readonly database: Database
  readonly store: EventStore
  readonly historian: Historian
  close(): Promise<void>
}

/**
 * Opens storage from configuration: PostgreSQL at DATABASE_URL or embedded PGlite in the data directory, and the event log
 * in EventStoreDB when ESDB_CONNECTION_STRING is set, otherwise in that same PostgreSQL database. The Historian gets the
 * integrity key ring when one is configured; without it, it reads but refuses to append (MissingIntegrityKeyError).
 */
export async function openStorage(config: Pick<AnnalistConfig, 'databaseUrl' | 'pgliteDataDir' | 'statementTimeoutMs' | 'esdbConnectionString' | 'integrityKeyRing'>): Promise<Storage> {
  const database = await openDatabase({ url: config.databaseUrl, pgliteDataDir: config.pgliteDataDir, statementTimeoutMs: config.statementTimeoutMs })
  const store: EventStore = config.esdbConnectionString ? EsdbEventStore.connect(config.esdbConnectionString) : new PostgresEventStore(database)
  return {
    database,
    store,
    historian: new Historian(store, { keyRing: config.integrityKeyRing }),
    async close() {
      await store.close()
      await database.close()
    },
  }
}
