import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type pg from 'pg'
import { expect } from 'vitest'

const CLI = fileURLToPath(new URL('../../bin/annalist.js', import.meta.url))
const WAIT = { timeout: 20_000, interval: 50 }
const WAITING_ON_LOCK = `select pid from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`

/**
 * Runs the built `annalist` with `args` and `env` (on top of this process's environment without any ANNALIST_,
 * DATABASE_URL, ESDB_ or TEMPORAL_ variable) while the caller holds a lock the command will wait on; once its statement
 * waits on the server, runs `whileBlocked`, SIGKILLs the process and ends its backend too: the server has not noticed
 * the dead socket yet, and were the lock released the statement would still complete. So the crash lands exactly at
 * that statement. Only on a PostgreSQL server (PGlite has no lock waits between connections).
 */
export async function killCliBlockedOnLock(
  pool: pg.Pool,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  whileBlocked?: () => Promise<void>,
): Promise<void> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(ANNALIST_|DATABASE_URL|ESDB_|TEMPORAL_)/.test(name)))
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...base, ...env }, stdio: 'ignore' })
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)))
  await expect.poll(async () => (await pool.query(WAITING_ON_LOCK)).rowCount, WAIT).toBe(1)
  await whileBlocked?.()
  child.kill('SIGKILL')
  expect(await exited).toBe('SIGKILL')
  const ended = await pool.query<{ ended: boolean }>(`select pg_terminate_backend(pid) as ended from (${WAITING_ON_LOCK}) waiting`)
  expect(ended.rows).toEqual([{ ended: true }])
}
