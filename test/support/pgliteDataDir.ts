import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { openDatabase, type Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../../historian/integrity/tenantKeyRing'

/** An embedded PGlite data directory as `annalist` finds it through ANNALIST_DATA_DIR, and a fresh integrity key. */
export interface PgliteDataDir {
  readonly dataDir: string
  /** ANNALIST_INTEGRITY_KEY of the directory's hash chains. */
  readonly key: string
  /** Opens the data directory in this process (only one process may have it open at a time), runs `work`, closes it. */
  withDataDir(work: (database: Database) => Promise<void>): Promise<void>
  /** A historian on the open directory that chains with `key`. */
  historianOn(database: Database): Historian
}

/** A new data directory `<tmp>/<prefix>XXXXXX` (created empty: the first `annalist` or `withDataDir` migrates it). */
export function pgliteDataDir(prefix: string): PgliteDataDir {
  const dataDir = mkdtempSync(path.join(tmpdir(), prefix))
  const key = generateIntegrityKey()
  return {
    dataDir,
    key,
    async withDataDir(work) {
      const database = await openDatabase({ pgliteDataDir: path.join(dataDir, 'pgdata') })
      try {
        await work(database)
      } finally {
        await database.close()
      }
    },
    historianOn: (database) => new Historian(new PostgresEventStore(database), { keyRing: TenantKeyRing.fromText(key) }),
  }
}
