import { EventStoreDBClient } from '@eventstore/db-client'
import { describe, expect, it } from 'vitest'
import { EsdbConnectionStringError, esdbClientConnectionString } from '../../historian/adapters/esdb/connectionString'
import { EsdbEventStore } from '../../historian/adapters/esdb/esdbEventStore'
import { loadConfig } from '../../cli/runtime/config'

const SCHEMES = ['esdb', 'esdb+discover', 'kurrentdb', 'kurrentdb+discover', 'kdb', 'kdb+discover'] as const

describe('ESDB_CONNECTION_STRING (no server needed: the client parses the string when it is built)', () => {
  it("translates KurrentDB's schemes to the ones @eventstore/db-client 6 parses, keeping hosts and settings", () => {
    expect(esdbClientConnectionString('kurrentdb://admin:changeit@localhost:2113?tls=false')).toBe('esdb://admin:changeit@localhost:2113?tls=false')
    expect(esdbClientConnectionString('kdb+discover://node1:2113,node2:2113?tls=true')).toBe('esdb+discover://node1:2113,node2:2113?tls=true')
    expect(esdbClientConnectionString('esdb://localhost:2113?tls=false')).toBe('esdb://localhost:2113?tls=false')
  })

  it('the client itself refuses kurrentdb:// (why the translation exists)', () => {
    expect(() => EventStoreDBClient.connectionString('kurrentdb://localhost:2113?tls=false')).toThrow()
  })

  it('builds a store from every accepted scheme', async () => {
    for (const scheme of SCHEMES) {
      const store = EsdbEventStore.connect(`${scheme}://localhost:2113?tls=false`)
      await store.close()
    }
  })

  it('refuses other schemes with one line naming the variable, in the configuration and in the adapter', () => {
    expect(() => loadConfig({ ESDB_CONNECTION_STRING: 'mysql://localhost/x' })).toThrow(/^ESDB_CONNECTION_STRING: must be an esdb:\/\/ or kurrentdb:\/\/ connection string$/)
    expect(() => esdbClientConnectionString('mysql://localhost/x')).toThrow(EsdbConnectionStringError)
    expect(() => esdbClientConnectionString('mysql://localhost/x')).toThrow(/^ESDB_CONNECTION_STRING: the scheme mysql:\/\/ is not one of/)
    for (const scheme of SCHEMES) expect(loadConfig({ ESDB_CONNECTION_STRING: `${scheme}://localhost:2113` }).esdbConnectionString).toBe(`${scheme}://localhost:2113`)
  })
})
