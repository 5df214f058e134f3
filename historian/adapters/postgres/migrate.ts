import path from 'node:path'
import { runner } from 'node-pg-migrate'
import type pg from 'pg'
import { packageRoot } from '../../packageRoot'

/** The SQL migrations shipped with Annalist (`migrations/NNN_name.sql`), applied in file-name order. */
export const MIGRATIONS_DIR = path.join(packageRoot(), 'migrations')

/** The table node-pg-migrate records applied migrations in. */
export const MIGRATIONS_TABLE = 'annalist_migrations'

/** Thrown when the schema migrations cannot be applied; nothing of the failed run is committed. */
export class MigrationError extends Error {
  constructor(
    readonly details: readonly string[],
    cause: unknown,
  ) {
    const reason = cause instanceof Error ? cause.message : String(cause)
    super(`database migration failed: ${reason}${details.length > 0 ? `\n${details.join('\n')}` : ''}`, { cause })
    this.name = 'MigrationError'
  }
}

/**
 * Brings the database schema up to date with node-pg-migrate. Pending migrations run in one transaction.
 *
 * Safe to run from several processes at once: node-pg-migrate takes a session advisory lock on the client it migrates
 * with (`advisoryLockMode: 'wait'`), so a second process waits, then finds nothing left to do. On PGlite (one session)
 * advisory locks never block, but there is only ever one writer. Over the embedded socket server the lock does not
 * exclude other connections either, which is why `startEmbeddedPostgres` migrates before it starts serving.
 *
 * Holds one pooled client for the whole run, and uses nothing else from the pool meanwhile (a PGlite pool has one client).
 */
export async function runMigrations(pool: pg.Pool): Promise<void> {
  const details: string[] = []
  const client = await pool.connect()
  let failure: unknown
  try {
    // Waiting for another process's migration lock, or a long migration, is not a runaway query: no statement timeout.
    await client.query('set statement_timeout = 0')
    await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction: 'up',
      migrationsTable: MIGRATIONS_TABLE,
      advisoryLockMode: 'wait',
      checkOrder: true,
      singleTransaction: true,
      logger: {
        debug: () => undefined,
        info: () => undefined,
        warn: (message: string) => void details.push(message),
        error: (message: string) => void details.push(message),
      },
    })
    await client.query('reset statement_timeout')
  } catch (error) {
    failure = error
    throw new MigrationError(details, error)
  } finally {
    // After a failure the session may still be in an aborted state: discard the client rather than pool it.
    client.release(failure instanceof Error ? failure : failure !== undefined)
  }
}
