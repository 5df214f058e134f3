import { randomBytes } from 'node:crypto'
import { readdirSync } from 'node:fs'
import { runner as migrationRunner } from 'node-pg-migrate'
import pg from 'pg'
import { afterEach, beforeEach, inject } from 'vitest'
import { openDatabase, type Database } from '../../historian/adapters/postgres/database'
import { MIGRATIONS_DIR, MIGRATIONS_TABLE } from '../../historian/adapters/postgres/migrate'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { forSuite } from './forSuite'

/** A random lowercase suffix for database, stream and tenant names. */
export function randomSuffix(bytes = 6): string {
  return randomBytes(bytes).toString('hex')
}

/** A key ring over a fresh random master key: tests never share or hard-code integrity keys. */
export function randomKeyRing(): TenantKeyRing {
  return TenantKeyRing.fromText(generateIntegrityKey())
}

/** The URL of `database` on the server that `adminUrl` points at. */
export function databaseUrl(adminUrl: string, database: string): string {
  const url = new URL(adminUrl)
  url.pathname = `/${database}`
  return url.toString()
}

async function withAdmin<T>(run: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: inject('postgresAdminUrl') })
  await admin.connect()
  try {
    return await run(admin)
  } finally {
    await admin.end()
  }
}

/**
 * A new database `annalist_t_<random>` on the test PostgreSQL server (`inject('postgresAdminUrl')`), migrated unless
 * `migrate: false`. `close()` closes the pool and drops the database.
 */
export async function freshPostgresDatabase(options: { migrate?: boolean } = {}): Promise<Database & { url: string }> {
  const name = `annalist_t_${randomSuffix()}`
  await withAdmin((admin) => admin.query(`create database ${pg.escapeIdentifier(name)}`))
  const url = databaseUrl(inject('postgresAdminUrl'), name)
  let database: Database
  try {
    database = await openDatabase({ url, migrate: options.migrate })
  } catch (error) {
    await withAdmin((admin) => admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`))
    throw error
  }
  return {
    ...database,
    url,
    async close() {
      await database.close()
      await withAdmin((admin) => admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`))
    },
  }
}

/** A new in-memory PGlite database, migrated. */
export async function freshPgliteDatabase(): Promise<Database> {
  return openDatabase({ pgliteDataDir: 'memory://' })
}

/** Both PostgreSQL backends every historian test runs against, for `describe.each`. */
export const DATABASE_BACKENDS = [
  { backend: 'postgres server', open: (): Promise<Database> => freshPostgresDatabase() },
  { backend: 'pglite', open: (): Promise<Database> => freshPgliteDatabase() },
] as const

/** A PostgresEventStore over a database that `close()` drops or discards along with the store. */
export async function postgresStoreOn(database: Database): Promise<{ database: Database; store: PostgresEventStore; close(): Promise<void> }> {
  const store = new PostgresEventStore(database)
  return {
    database,
    store,
    async close() {
      await store.close()
      await database.close()
    },
  }
}

/** A fresh database, store, historian and random integrity key ring for each test of the enclosing describe block. */
export function historianPerTest(open: () => Promise<Database>): {
  readonly database: Database
  readonly store: PostgresEventStore
  readonly historian: Historian
  readonly keyRing: TenantKeyRing
} {
  const fixture = {} as { database: Database; store: PostgresEventStore; historian: Historian; keyRing: TenantKeyRing }
  beforeEach(async () => {
    fixture.database = await open()
    fixture.store = new PostgresEventStore(fixture.database)
    fixture.keyRing = randomKeyRing()
    fixture.historian = new Historian(fixture.store, { keyRing: fixture.keyRing })
  })
  afterEach(async () => {
    await fixture.store.close()
    await fixture.database.close()
  })
  return fixture
}

/** How many migrations there are from number `first` on: migrating down by that many undoes `first` and every later one. */
export function migrationsFrom(first: number): number {
  return readdirSync(MIGRATIONS_DIR).filter((file) => /^\d+_.*\.sql$/.test(file) && Number.parseInt(file, 10) >= first).length
}

/** Runs the schema migrations up (all pending) or down (`count` of them), in one transaction, without the advisory lock. */
export async function migrateSchema(pool: pg.Pool, direction: 'up' | 'down', count?: number): Promise<void> {
  const client = await pool.connect()
  try {
    await migrationRunner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction,
      count,
      migrationsTable: MIGRATIONS_TABLE,
      singleTransaction: true,
      logger: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
    })
  } finally {
    client.release()
  }
}

/**
 * A PostgresEventStore on a fresh server database (`freshPostgresDatabase`) for the enclosing describe block: opened
 * before its tests, closed and dropped after them.
 */
export function postgresStoreForSuite(): { readonly database: Database & { url: string }; readonly store: PostgresEventStore } {
  const current = forSuite(
    'postgresStoreForSuite',
    async () => {
      const database = await freshPostgresDatabase()
      return { database, store: new PostgresEventStore(database) }
    },
    async ({ database, store }) => {
      await store.close()
      await database.close()
    },
  )
  return {
    get database() {
      return current().database
    },
    get store() {
      return current().store
    },
  }
}
