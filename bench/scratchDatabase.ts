import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { maskDatabaseUrl, openDatabase, type Database } from '../historian/adapters/postgres/database'

/**
 * A fresh, migrated database for one benchmark, so its figures never depend on what an earlier run left behind:
 * with `serverUrl`, a new database `annalist_bench_<label>_<random>` on that server (dropped again by `close()`;
 * the role needs CREATEDB); without it, an in-memory PGlite.
 */
export async function openScratchDatabase(serverUrl: string | undefined, label: string): Promise<Database> {
  if (!serverUrl) return openDatabase({ pgliteDataDir: 'memory://' })
  const name = `annalist_bench_${label}_${randomBytes(4).toString('hex')}`
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 10_000 })
    try {
      await client.connect()
      await client.query(sql)
    } finally {
      await client.end().catch(() => undefined)
    }
  }
  try {
    await admin(`create database ${pg.escapeIdentifier(name)}`)
  } catch (error) {
    throw new Error(`bench: cannot create scratch database ${name} on ${maskDatabaseUrl(serverUrl)} (the role needs CREATEDB): ${(error as Error).message}`, {
      cause: error,
    })
  }
  const drop = () => admin(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`)
  let database: Database
  try {
    database = await openDatabase({ url: url.toString() })
  } catch (error) {
    await drop().catch(() => undefined)
    throw error
  }
  return {
    ...database,
    async close() {
      await database.close()
      await drop()
    },
  }
}
