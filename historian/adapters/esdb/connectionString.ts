/** Thrown when an EventStoreDB / KurrentDB connection string has a scheme the client cannot connect with. */
export class EsdbConnectionStringError extends Error {
  constructor(readonly scheme: string) {
    super(`ESDB_CONNECTION_STRING: the scheme ${scheme}:// is not one of esdb://, esdb+discover://, kurrentdb://, kurrentdb+discover://, kdb://, kdb+discover://`)
    this.name = 'EsdbConnectionStringError'
  }
}

/** KurrentDB's schemes and the EventStoreDB ones `@eventstore/db-client` 6.x parses: the server speaks the same gRPC API. */
const CLIENT_SCHEMES: Readonly<Record<string, string>> = {
  esdb: 'esdb',
  'esdb+discover': 'esdb+discover',
  kurrentdb: 'esdb',
  'kurrentdb+discover': 'esdb+discover',
  kdb: 'esdb',
  'kdb+discover': 'esdb+discover',
}

/**
 * The connection string as `@eventstore/db-client` 6.x parses it: KurrentDB's `kurrentdb://` and `kdb://` (and their
 * `+discover` forms) become `esdb://`, which that client reads and KurrentDB serves; everything after the scheme is kept.
 */
export function esdbClientConnectionString(connectionString: string): string {
  const match = /^([a-z+]+):\/\//i.exec(connectionString.trim())
  const scheme = match?.[1]?.toLowerCase() ?? ''
  const clientScheme = CLIENT_SCHEMES[scheme]
  if (clientScheme === undefined) throw new EsdbConnectionStringError(scheme || connectionString.trim().slice(0, 20))
  return `${clientScheme}://${connectionString.trim().slice(match![0].length)}`
}
