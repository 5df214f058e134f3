import { basename } from 'node:path'

import { ensureLocalLlm } from './localLlm'
import { freeLoopbackPort, LOOPBACK, ServerStartError, startOnFreePorts, startServerProcess } from './serverProcess'

/** An OpenAI-compatible inference server Annalist can use, and how to release it. */
export interface LocalLlmEndpoint {
  /** The OpenAI base URL, ending in `/v1`. */
  readonly baseURL: string
  /** The model to ask for: the id the server lists on /v1/models (or ANNALIST_LLM_MODEL). */
  readonly modelId: string
  /** `url`: ANNALIST_LLM_BASE_URL; `spawned`: a llama.cpp server we started. */
  readonly source: 'url' | 'spawned'
  /** Stops the server if we started it (a no-op for ANNALIST_LLM_BASE_URL). Safe to call twice. */
  stop(): Promise<void>
}

/** A llama.cpp server we spawned. */
export interface LocalLlmServer extends LocalLlmEndpoint {
  readonly source: 'spawned'
  readonly pid: number
  readonly logFile: string
}

export interface StartLocalLlmServerOptions {
  /** A python with llama-cpp-python[server] installed (see setupLocalLlm). */
  readonly python: string
  /** The GGUF to serve; the server lists it under its file name without `.gguf`. */
  readonly modelPath: string
  /** A free one when omitted. */
  readonly port?: number
  /** Context window in tokens. */
  readonly contextSize?: number
  /** CPU threads for generation and prompt processing. */
  readonly threads?: number
  /** Server output is appended here; a temporary file when omitted. */
  readonly logFile?: string
  /** How long to wait for /v1/models to answer (loading the model included). */
  readonly startTimeoutMs?: number
  /** After SIGTERM, how long stop() waits before SIGKILL. */
  readonly stopGraceMs?: number
}

export interface ResolveLocalLlmOptions {
  readonly env?: NodeJS.ProcessEnv
  /** Install the server into the cache dir when it is missing (the first time compiles llama.cpp: about 20 minutes). */
  readonly allowSetup?: boolean
  /** Human-readable progress: which server is used, setup steps. */
  readonly onProgress?: (line: string) => void
  readonly startTimeoutMs?: number
}

/** Thrown when a spawned inference server exits or does not answer in time; the message ends with its last log lines. */
export class LocalLlmServerError extends ServerStartError {
  constructor(message: string, logFile: string, logTail: readonly string[]) {
    super(message, logFile, logTail)
    this.name = 'LocalLlmServerError'
  }
}

/** Thrown when the server named by ANNALIST_LLM_BASE_URL is not a URL, does not answer /models, or lists no model. */
export class LocalLlmConnectionError extends Error {
  constructor(
    readonly baseURL: string,
    readonly reason: string,
  ) {
    super(`cannot use the inference server at ANNALIST_LLM_BASE_URL=${baseURL}: ${reason}`)
    this.name = 'LocalLlmConnectionError'
  }
}

/** The context size the local server starts with: the default 2048 is too small for the planner's prompt. */
export const LOCAL_LLM_CONTEXT_SIZE = 4096
const DEFAULT_START_TIMEOUT_MS = 120_000
const DEFAULT_STOP_GRACE_MS = 5_000
const READY_POLL_MS = 200
const PROBE_TIMEOUT_MS = 2_000
/**
 * One thread: llama.cpp's threads spin while they wait for each other, so next to the tests' other processes (Temporal,
 * workers, vitest forks) more threads made requests slower, not faster (on 2 CPUs under load, 3-20 s instead of 0.4-6 s
 * for the same request); one thread serves this 135M-parameter model in well under a second when the CPU is free.
 */
const DEFAULT_THREADS = 1
/**
 * The server's settings are pydantic-settings read from unprefixed environment variables (PORT, MODEL, API_KEY,
 * CONFIG_FILE, ...); it gets only what Python itself needs.
 */
const PASSED_ENVIRONMENT = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'LC_ALL', 'LC_CTYPE', 'LD_LIBRARY_PATH', 'SYSTEMROOT'] as const

/**
 * Runs `python -m llama_cpp.server` and exits when the process that started it is gone, even a SIGKILLed one: a
 * watchdog thread compares the parent pid, which changes when the parent dies.
 */
const SERVER_LAUNCHER = `
import os, runpy, sys, threading, time
parent = os.getppid()
def watch_parent():
    while True:
        time.sleep(1)
        if os.getppid() != parent:
            os._exit(1)
threading.Thread(target=watch_parent, daemon=True).start()
sys.argv = ["llama_cpp.server", *sys.argv[1:]]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
`

/**
 * Spawns llama-cpp-python's OpenAI-compatible server for a GGUF on 127.0.0.1 (a free port unless `port` is given) and
 * waits until GET /v1/models answers. It runs in its own process group and is stopped by stop(), when this process
 * exits, or on SIGINT/SIGTERM/SIGHUP when the application installed no handler of its own; if this process is
 * SIGKILLed, the server notices within a second and exits. It serves one request at a time.
 */
export async function startLocalLlmServer(options: StartLocalLlmServerOptions): Promise<LocalLlmServer> {
  return startOnFreePorts(() => spawnServer(options), { portFixed: options.port !== undefined })
}

async function spawnServer(options: StartLocalLlmServerOptions): Promise<LocalLlmServer> {
  const port = options.port ?? (await freeLoopbackPort())
  const baseURL = `http://${LOOPBACK}:${port}/v1`
  const args = [
    '--model',
    options.modelPath,
    '--model_alias',
    basename(options.modelPath).replace(/\.gguf$/i, ''),
    '--n_ctx',
    String(options.contextSize ?? LOCAL_LLM_CONTEXT_SIZE),
    '--n_threads',
    String(options.threads ?? DEFAULT_THREADS),
    '--n_threads_batch',
    String(options.threads ?? DEFAULT_THREADS),
    '--host',
    LOOPBACK,
    '--port',
    String(port),
  ]
  const env = Object.fromEntries(PASSED_ENVIRONMENT.flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]]])))
  const server = await startServerProcess<string>({
    name: 'llama.cpp server',
    where: `at ${baseURL}`,
    command: options.python,
    args: ['-c', SERVER_LAUNCHER, ...args],
    shownCommand: `${options.python} -m llama_cpp.server ${args.join(' ')}`,
    env: { ...env, PYTHONUNBUFFERED: '1' },
    ...(options.logFile === undefined ? {} : { logFile: options.logFile }),
    tempLogPrefix: 'annalist-llm-',
    startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
    stopGraceMs: options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
    pollMs: READY_POLL_MS,
    ready: async () => {
      const answer = await listModels(baseURL)
      if (!Array.isArray(answer)) return { notYet: answer.error }
      const modelId = answer[0]
      return modelId === undefined ? { notYet: 'it lists no model' } : { ready: modelId }
    },
    error: (message, logFile, logTail) => new LocalLlmServerError(message, logFile, logTail),
  })
  return { baseURL, modelId: server.ready, source: 'spawned', pid: server.pid, logFile: server.logFile, stop: server.stop }
}

/**
 * Finds an inference server: the one at ANNALIST_LLM_BASE_URL (model ANNALIST_LLM_MODEL, else the first it lists),
 * else a llama.cpp server started from the installation in the cache dir (installed first when `allowSetup`). Throws
 * LocalLlmUnavailableError, one line saying how to get one, when neither is there.
 */
export async function resolveLocalLlm(options: ResolveLocalLlmOptions = {}): Promise<LocalLlmEndpoint> {
  const env = options.env ?? process.env
  const progress = options.onProgress ?? (() => undefined)
  const configured = env.ANNALIST_LLM_BASE_URL?.trim()
  if (configured) {
    const baseURL = configured.replace(/\/+$/, '')
    if (!/^https?:\/\/[^/\s]+/.test(baseURL) || !URL.canParse(baseURL)) {
      throw new LocalLlmConnectionError(configured, 'not an http:// or https:// URL (e.g. http://127.0.0.1:8080/v1)')
    }
    const answer = await listModels(baseURL, 10_000)
    if (!Array.isArray(answer)) throw new LocalLlmConnectionError(baseURL, `GET /models: ${answer.error}`)
    const modelId = env.ANNALIST_LLM_MODEL?.trim() || answer[0]
    if (modelId === undefined) throw new LocalLlmConnectionError(baseURL, 'GET /models lists no model; set ANNALIST_LLM_MODEL')
    progress(`using the inference server at ${baseURL} (model ${modelId})`)
    return { baseURL, modelId, source: 'url', stop: async () => undefined }
  }

  const installation = await ensureLocalLlm({ env, allowSetup: options.allowSetup, onProgress: progress })
  progress(`starting the llama.cpp server with ${installation.modelPath}`)
  return startLocalLlmServer({
    ...installation,
    ...(options.startTimeoutMs === undefined ? {} : { startTimeoutMs: options.startTimeoutMs }),
  })
}

/** The model ids a server lists on GET <baseURL>/models, or why it did not answer. */
async function listModels(baseURL: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<string[] | { error: string }> {
  try {
    const response = await fetch(`${baseURL}/models`, { signal: AbortSignal.timeout(timeoutMs) })
    if (!response.ok) return { error: `HTTP ${response.status}` }
    const body = (await response.json()) as { data?: Array<{ id?: unknown }> }
    if (!Array.isArray(body.data)) return { error: 'the answer has no data list' }
    return body.data.flatMap((model) => (typeof model.id === 'string' ? [model.id] : []))
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code
    return { error: cause ?? (error instanceof Error ? error.message : String(error)) }
  }
}
