import { readdir } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import type { Database } from '../../historian/adapters/postgres/database'
import { MIGRATIONS_DIR, MIGRATIONS_TABLE, runMigrations } from '../../historian/adapters/postgres/migrate'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { openDatabase } from '../../historian/adapters/postgres/database'
import { freshPgliteDatabase, freshPostgresDatabase } from '../support/databases'
import { freshStream, newEvents } from '../support/eventStoreContract'

async function migrationFiles(): Promise<string[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((file) => file.endsWith('.sql'))
  return files.map((file) => file.slice(0, -'.sql'.length)).sort()
}

async function appliedMigrations(database: Pick<Database, 'pool'>): Promise<string[]> {
  const { rows } = await database.pool.query<{ name: string }>(`select name from ${MIGRATIONS_TABLE} order by id`)
  return rows.map((row) => row.name)
}

async function expectWorkingEventStore(database: Database): Promise<void> {
  const store = new PostgresEventStore(database)
  const stream = freshStream()
  await store.appendToStream(stream, newEvents(2), { expectedRevision: 'no_stream' })
  expect(await store.readStream(stream)).toHaveLength(2)
}

describe('schema migrations', () => {
  it('apply every migration file once, in file-name order, and running them again changes nothing', async () => {
    const database = await freshPostgresDatabase()
    try {
      const files = await migrationFiles()
      expect(files[0]).toBe('001_event_store')
      expect(await appliedMigrations(database)).toEqual(files)
      await runMigrations(database.pool)
      await runMigrations(database.pool)
      expect(await appliedMigrations(database)).toEqual(files)
      await expectWorkingEventStore(database)
    } finally {
      await database.close()
    }
  })

  it('run concurrently from two pools against one fresh database without error', async () => {
    const database = await freshPostgresDatabase({ migrate: false })
    const second = await openDatabase({ url: database.url, migrate: false })
    try {
      expect(await appliedMigrationsOrNone(database)).toEqual([])
      await Promise.all([runMigrations(database.pool), runMigrations(second.pool), runMigrations(database.pool)])
      expect(await appliedMigrations(second)).toEqual(await migrationFiles())
      await expectWorkingEventStore(database)
    } finally {
      await second.close()
      await database.close()
    }
  })

  it('work on PGlite, twice', async () => {
    const database = await freshPgliteDatabase()
    try {
      expect(await appliedMigrations(database)).toEqual(await migrationFiles())
      await runMigrations(database.pool)
      expect(await appliedMigrations(database)).toEqual(await migrationFiles())
      await expectWorkingEventStore(database)
    } finally {
      await database.close()
    }
  })
})

async function appliedMigrationsOrNone(database: Pick<Database, 'pool'>): Promise<string[]> {
  const { rows } = await database.pool.query<{ exists: boolean }>('select to_regclass($1) is not null as exists', [MIGRATIONS_TABLE])
  return rows[0]!.exists ? appliedMigrations(database) : []
}
