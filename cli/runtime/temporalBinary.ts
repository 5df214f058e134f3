import { spawn, execFile } from 'node:child_process'
import { accessSync, constants, statSync } from 'node:fs'
import { access, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises'
import { homedir } from 'node:os'
import { delimiter, join } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'

import { isProcessAlive, withFileLock } from './fileLock'
import { startActivityIndicator } from './progress'
import { setupCommandStreams, type SetupCommandOptions } from './setupCommandOptions'

/** The temporal CLI release Annalist builds: the last one whose go.mod allows `go install`; it embeds Temporal server 1.29.1. */
export const TEMPORAL_CLI_VERSION = '1.5.1'

const TEMPORAL_CLI_PACKAGE = 'github.com/temporalio/cli/cmd/temporal'
const TEMPORAL_CLI_VERSION_VARIABLE = 'github.com/temporalio/cli/temporalcli.Version'
const BINARY_NAME = process.platform === 'win32' ? 'temporal.exe' : 'temporal'
const GO_NAME = process.platform === 'win32' ? 'go.exe' : 'go'
const HOW_TO_GET_A_BINARY =
  'install Go and run `npm run setup:temporal`, set TEMPORAL_CLI_PATH, or set TEMPORAL_ADDRESS'
const STDERR_TAIL_LINES = 8
const BUILD_LOCK_WAIT_LIMIT_MS = 30 * 60_000

/** Thrown when TEMPORAL_CLI_PATH names a file that does not exist or cannot be executed. */
export class TemporalCliPathError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`TEMPORAL_CLI_PATH=${path} ${reason}; point it at an executable temporal CLI, or unset it`)
    this.name = 'TemporalCliPathError'
  }
}

/** Thrown when no temporal binary is found and none can be built because Go is not installed. */
export class TemporalBinaryUnavailableError extends Error {
  constructor(readonly detail?: string) {
    super(`no temporal binary: ${HOW_TO_GET_A_BINARY}${detail ? ` (${detail})` : ''}`)
    this.name = 'TemporalBinaryUnavailableError'
  }
}

/** Thrown when `go install` of the temporal CLI fails; the message ends with the last lines go printed. */
export class TemporalBuildError extends Error {
  constructor(
    readonly exitCode: number | null,
    readonly stderrTail: readonly string[],
  ) {
    const tail = stderrTail.length > 0 ? `: ${stderrTail.join(' | ')}` : ''
    super(`go install ${TEMPORAL_CLI_PACKAGE}@v${TEMPORAL_CLI_VERSION} failed (exit ${exitCode ?? 'signal'})${tail}`)
    this.name = 'TemporalBuildError'
  }
}

/**
 * Where Annalist keeps what it builds (the temporal binary, the local inference server): `$ANNALIST_CACHE_DIR`, else
 * `~/.cache/annalist`.
 */
export function annalistCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.ANNALIST_CACHE_DIR?.trim()
  return configured ? configured : join(homedir(), '.cache', 'annalist')
}

/** Path of the temporal binary inside a cache dir. */
export function cachedTemporalBinaryPath(cacheDir: string): string {
  return join(cacheDir, 'bin', BINARY_NAME)
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

function findOnPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue
    const candidate = join(dir, name)
    if (isExecutableFile(candidate)) return candidate
  }
  return undefined
}

/**
 * Finds a temporal CLI: `TEMPORAL_CLI_PATH` (which must then exist and be executable), then the Annalist cache dir,
 * then `PATH`. Returns undefined when there is none.
 */
export function findTemporalBinary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const configured = env.TEMPORAL_CLI_PATH?.trim()
  if (configured) {
    let isFile: boolean
    try {
      isFile = statSync(configured).isFile()
    } catch {
      throw new TemporalCliPathError(configured, 'does not exist')
    }
    if (!isFile) throw new TemporalCliPathError(configured, 'is not a file')
    if (!isExecutableFile(configured)) throw new TemporalCliPathError(configured, 'is not executable')
    return configured
  }
  const cached = cachedTemporalBinaryPath(annalistCacheDir(env))
  if (isExecutableFile(cached)) return cached
  return findOnPath(BINARY_NAME, env)
}

/** Path of the `go` command on PATH, if Go is installed. */
export function findGo(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return findOnPath(GO_NAME, env)
}

export interface BuildTemporalBinaryOptions {
  /** Receives every line go prints (`go: downloading ...`), plus a line when waiting for another build. */
  readonly onProgress?: (line: string) => void
  /** Defaults to {@link annalistCacheDir}. */
  readonly cacheDir?: string
  /** Environment for finding and running go; defaults to process.env. */
  readonly env?: NodeJS.ProcessEnv
}

/**
 * Builds the temporal CLI with `go install` into `<cacheDir>/bin` and returns its path. The build goes to a temporary
 * GOBIN and is renamed into place, so a killed build never leaves half a binary; a lock file keeps concurrent callers
 * from building twice (the second waits and reuses the first one's binary).
 */
export async function buildTemporalBinary(options: BuildTemporalBinaryOptions = {}): Promise<string> {
  const env = options.env ?? process.env
  const onProgress = options.onProgress ?? (() => undefined)
  const go = findGo(env)
  if (!go) throw new TemporalBinaryUnavailableError('go is not on PATH')
  const cacheDir = options.cacheDir ?? annalistCacheDir(env)
  const binDir = join(cacheDir, 'bin')
  await mkdir(binDir, { recursive: true })
  const target = cachedTemporalBinaryPath(cacheDir)

  const lock = { what: 'temporal CLI build', onWait: onProgress, waitLimitMs: BUILD_LOCK_WAIT_LIMIT_MS }
  return withFileLock(join(binDir, '.temporal-build.lock'), lock, async (lockIsFresh) => {
    // Whoever held the lock before us may have finished the build.
    if (!lockIsFresh && isExecutableFile(target)) return target
    await removeAbandonedBuildDirs(binDir)
    const buildDir = await mkdtemp(join(binDir, `.build-${process.pid}-`))
    try {
      const goEnv = await goBuildEnv(go, env, cacheDir)
      await runGoInstall(go, { ...goEnv, GOBIN: buildDir }, onProgress)
      await rename(join(buildDir, BINARY_NAME), target)
      return target
    } finally {
      await rm(buildDir, { recursive: true, force: true })
    }
  })
}

export interface EnsureTemporalBinaryOptions {
  readonly onProgress?: (line: string) => void
  /** Build with Go when no binary is found (takes minutes the first time). */
  readonly allowBuild?: boolean
  readonly cacheDir?: string
  readonly env?: NodeJS.ProcessEnv
}

/** Finds a temporal binary, or builds one when `allowBuild` is set; throws {@link TemporalBinaryUnavailableError} otherwise. */
export async function ensureTemporalBinary(options: EnsureTemporalBinaryOptions = {}): Promise<string> {
  const env = options.env ?? process.env
  const found = findTemporalBinary(
    options.cacheDir === undefined ? env : { ...env, ANNALIST_CACHE_DIR: options.cacheDir },
  )
  if (found) return found
  if (!options.allowBuild) throw new TemporalBinaryUnavailableError()
  return buildTemporalBinary({ onProgress: options.onProgress, cacheDir: options.cacheDir, env })
}

/**
 * `annalist setup-temporal`: finds the temporal CLI or builds it with Go, showing a spinner with elapsed seconds and
 * the count of modules downloaded on stderr, then prints the binary's path on stdout.
 */
export async function setupTemporalCommand(options: SetupCommandOptions = {}): Promise<void> {
  const { env, stdout, stderr } = setupCommandStreams(options)
  const found = findTemporalBinary(env)
  if (found) {
    stderr.write(`temporal CLI found: ${found}\n`)
    stdout.write(`${found}\n`)
    return
  }
  if (!findGo(env)) throw new TemporalBinaryUnavailableError('go is not on PATH')
  const started = Date.now()
  const indicator = startActivityIndicator({
    label: `building temporal CLI v${TEMPORAL_CLI_VERSION} with go install`,
    countLabel: 'modules downloaded',
    stream: stderr,
  })
  let path: string
  try {
    path = await buildTemporalBinary({
      env,
      onProgress: (line) => {
        const downloading = /^go: downloading (\S+)/.exec(line)
        if (downloading) indicator.tick(downloading[1])
        else indicator.note(line)
      },
    })
  } catch (error) {
    indicator.stop()
    throw error
  }
  indicator.stop(`built temporal CLI v${TEMPORAL_CLI_VERSION} in ${Math.round((Date.now() - started) / 1000)}s`)
  stdout.write(`${path}\n`)
}

async function runGoInstall(go: string, env: NodeJS.ProcessEnv, onProgress: (line: string) => void): Promise<void> {
  const args = [
    'install',
    `-ldflags=-X ${TEMPORAL_CLI_VERSION_VARIABLE}=${TEMPORAL_CLI_VERSION}`,
    `${TEMPORAL_CLI_PACKAGE}@v${TEMPORAL_CLI_VERSION}`,
  ]
  const child = spawn(go, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  const stderrTail: string[] = []
  const forward = (stream: NodeJS.ReadableStream, keepTail: boolean) => {
    const lines = createInterface({ input: stream, crlfDelay: Infinity })
    lines.on('line', (line) => {
      if (keepTail) {
        stderrTail.push(line)
        if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift()
      }
      onProgress(line)
    })
    return new Promise<void>((resolve) => lines.once('close', resolve))
  }
  const outputDone = Promise.all([forward(child.stdout, false), forward(child.stderr, true)])
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code) => resolve(code))
  }).catch((error: NodeJS.ErrnoException) => {
    throw new TemporalBinaryUnavailableError(`could not run ${go}: ${error.message}`)
  })
  await outputDone
  if (exitCode !== 0) throw new TemporalBuildError(exitCode, stderrTail)
}

/** go's environment with a module and build cache it can write: the user's own when writable, else ones in our cache dir. */
async function goBuildEnv(go: string, env: NodeJS.ProcessEnv, cacheDir: string): Promise<NodeJS.ProcessEnv> {
  const result: NodeJS.ProcessEnv = { ...env }
  let configured: { GOMODCACHE?: string; GOCACHE?: string } = {}
  try {
    const { stdout } = await promisify(execFile)(go, ['env', '-json', 'GOMODCACHE', 'GOCACHE'], {
      env,
      timeout: 60_000,
    })
    configured = JSON.parse(stdout) as typeof configured
  } catch {
    // go env fails when HOME is unset and no cache is configured: fall through to our own caches.
  }
  if (configured.GOMODCACHE && (await isWritableDir(configured.GOMODCACHE))) {
    result.GOMODCACHE = configured.GOMODCACHE
  } else {
    result.GOMODCACHE = join(cacheDir, 'go', 'mod')
    // Module files are read-only by default; -modcacherw lets `rm -rf` clean our cache dir.
    result.GOFLAGS = [env.GOFLAGS, '-modcacherw'].filter(Boolean).join(' ')
  }
  result.GOCACHE =
    configured.GOCACHE && (await isWritableDir(configured.GOCACHE)) ? configured.GOCACHE : join(cacheDir, 'go', 'build')
  return result
}

async function isWritableDir(dir: string): Promise<boolean> {
  try {
    await mkdir(dir, { recursive: true })
    await access(dir, constants.W_OK)
    return true
  } catch {
    return false
  }
}

/** Removes the temporary GOBIN dirs (`.build-<pid>-*`) of builds whose process is gone. */
async function removeAbandonedBuildDirs(binDir: string): Promise<void> {
  for (const entry of await readdir(binDir)) {
    const owner = /^\.build-(\d+)-/.exec(entry)
    if (owner && !isProcessAlive(Number(owner[1]))) await rm(join(binDir, entry), { recursive: true, force: true })
  }
}
