import { execFile } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** The shipped CLI and the dev tools (the demo, chaos, fault-injecting workers). */
const CLI = fileURLToPath(new URL('../../bin/annalist.js', import.meta.url))
const DEV_CLI = fileURLToPath(new URL('../../bin/annalist-dev.js', import.meta.url))

/** What a CLI run printed and how it exited. */
export interface CliRun {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs the real `annalist` CLI in a child process with no inherited Annalist, database or Temporal settings; `env` adds
 * some back. Without ANNALIST_DATA_DIR in `env` it gets a scratch data directory of its own.
 */
export function runAnnalist(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return runEntry(CLI, args, env)
}

/** runAnnalist for `annalist-dev` (dev/main.ts). */
export function runAnnalistDev(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return runEntry(DEV_CLI, args, env)
}

function runEntry(entry: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(ANNALIST_|DATABASE_URL|ESDB_|TEMPORAL_)/.test(key)))
  return new Promise((resolve) => {
    execFile(process.execPath, [entry, ...args], { env: { ...base, ANNALIST_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'annalist-cli-')), ...env } }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
  })
}
