import { describe } from 'vitest'
import { EsdbEventStore } from '../../historian/adapters/esdb/esdbEventStore'
import { eventStoreContract } from '../support/eventStoreContract'

// Runs only against a real EventStoreDB / KurrentDB: set ESDB_CONNECTION_STRING (e.g. esdb://localhost:2113?tls=false
// with `docker compose up eventstore`), as the README describes. Our build machines have no container engine, so CI skips it.
const connectionString = process.env.ESDB_CONNECTION_STRING

describe.skipIf(!connectionString)('EventStoreDB', () => {
  eventStoreContract('EventStoreDB', async () => {
    const store = EsdbEventStore.connect(connectionString!)
    return { store, close: () => store.close() }
  })
})
