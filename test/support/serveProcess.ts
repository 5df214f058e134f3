import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { waitUntil } from './waitUntil'

const CLI = fileURLToPath(new URL('../../bin/annalist.js', import.meta.url))

/** A running `annalist serve` of the built CLI. */
export interface ServeProcess {
  readonly child: ChildProcess
  /** Where it listens: `http://127.0.0.1:<port>`. */
  readonly baseUrl: string
  /** What it printed so far. */
  stdout(): string
  stderr(): string
}

/**
 * Starts the built `annalist serve --port 0` with exactly `env` and waits until it says where it listens. If it exits
 * or says nothing in time, it is killed and the wait fails with its output.
 */
export async function startServe(env: NodeJS.ProcessEnv, options: { readonly timeoutMs?: number } = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk) => (stdout += chunk))
  child.stderr!.on('data', (chunk) => (stderr += chunk))
  try {
    const baseUrl = await waitUntil(
      'serve to say where it listens',
      () => {
        if (child.exitCode !== null) throw new Error(`serve exited with code ${child.exitCode}`)
        return /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1]
      },
      { timeoutMs: options.timeoutMs ?? 30_000, intervalMs: 50, detail: () => `${stdout}${stderr}` },
    )
    return { child, baseUrl, stdout: () => stdout, stderr: () => stderr }
  } catch (error) {
    child.kill('SIGKILL')
    throw error
  }
}
