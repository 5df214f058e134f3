import { execFile } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { freePort, waitForPostgres, type RestartableDatabase } from './restartableServers'

const run = promisify(execFile)

/** Where Debian and Ubuntu install the PostgreSQL 15 server binaries. */
export const DEFAULT_POSTGRES_BIN_DIR = '/usr/lib/postgresql/15/bin'

/** Thrown when a private PostgreSQL cluster cannot be created or started; names the step and the tool's output. */
export class PrivateClusterError extends Error {
  constructor(
    readonly step: string,
    readonly output: string,
  ) {
    super(`private PostgreSQL cluster: ${step} failed: ${output.trim().split('\n').slice(-3).join(' | ')}`)
    this.name = 'PrivateClusterError'
  }
}

/**
 * Creates a PostgreSQL cluster of its own (initdb into a temporary directory, trust auth on 127.0.0.1, a free port) and
 * starts it with pg_ctl, so the fault campaign can crash it (`pg_ctl stop -m immediate`, no shutdown checkpoint, crash
 * recovery on the next start) without touching any server it does not own. As root, the cluster runs as the `postgres`
 * user, since PostgreSQL refuses to run as root. stop() shuts it down and deletes the directory.
 */
export async function startPrivatePostgresCluster(options: { binDir?: string } = {}): Promise<RestartableDatabase> {
  const binDir = options.binDir ?? DEFAULT_POSTGRES_BIN_DIR
  if (!existsSync(path.join(binDir, 'pg_ctl'))) throw new PrivateClusterError('finding pg_ctl', `no pg_ctl in ${binDir} (install the postgresql package)`)
  const dir = mkdtempSync(path.join(tmpdir(), 'annalist-chaos-pg-'))
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim())
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim())
    chownSync(dir, uid, gid)
    chmodSync(dir, 0o700)
  }
  const dataDir = path.join(dir, 'data')
  const logFile = path.join(dir, 'server.log')
  const tool = async (step: string, name: string, args: readonly string[]) => {
    const [command, commandArgs] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(binDir, name), ...args]] : [path.join(binDir, name), [...args]]
    try {
      await run(command, commandArgs as string[], { timeout: 120_000 })
    } catch (error) {
      const failed = error as { stdout?: string; stderr?: string; message: string }
      throw new PrivateClusterError(step, `${failed.stderr ?? ''}${failed.stdout ?? ''}` || failed.message)
    }
  }
  const port = await freePort()
  const url = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`
  const start = () => tool('pg_ctl start', 'pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, 'start'])
  try {
    await tool('initdb', 'initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-instructions'])
    await start()
    await waitForPostgres(url, 60_000)
  } catch (error) {
    await tool('pg_ctl stop', 'pg_ctl', ['-D', dataDir, '-m', 'immediate', 'stop']).catch(() => undefined)
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  let stopped = false
  return {
    address: `127.0.0.1:${port}`,
    url,
    async restart() {
      await tool('pg_ctl stop -m immediate', 'pg_ctl', ['-D', dataDir, '-m', 'immediate', 'stop'])
      await start()
      await waitForPostgres(url, 60_000)
    },
    async stop() {
      if (stopped) return
      stopped = true
      await tool('pg_ctl stop', 'pg_ctl', ['-D', dataDir, '-m', 'fast', 'stop']).catch(() => undefined)
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
