import { spawn } from 'node:child_process'
import { closeSync, openSync, rmSync, writeSync } from 'node:fs'
import { mkdtemp, open, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { join } from 'node:path'

// What the local servers Annalist spawns (the Temporal dev server, the llama.cpp inference server) share: their lifetime
// is tied to this process, and a failed start reports the tail of their log.

const SIGNALS_TO_FORWARD = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
/** Marks the signal handlers installed here, so they can tell whether the application has handlers of its own. */
const SERVER_SIGNAL_HANDLER = Symbol('annalist.serverSignalHandler')

/**
 * Calls `release` (which should kill the server synchronously) when this process exits, or on SIGINT/SIGTERM/SIGHUP
 * when the application installed no handler of its own; the signal then does what it would have done without us. A
 * server spawned `detached` is in its own process group, so a Ctrl-C in the terminal reaches it only this way. Returns a
 * function that removes the hooks, to call from the server's stop().
 */
export function releaseWithThisProcess(release: () => void): () => void {
  const onSignal = Object.assign(
    (signal: NodeJS.Signals) => {
      const listeners = process.listeners(signal)
      // The application handles this signal itself: it will call stop(), and the 'exit' hook covers the rest.
      if (!listeners.every((listener) => SERVER_SIGNAL_HANDLER in listener)) return
      release()
      removeHooks()
      // Last of our handlers: let the signal do what it would have done without us.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
    },
    { [SERVER_SIGNAL_HANDLER]: true },
  )
  const removeHooks = () => {
    process.removeListener('exit', release)
    for (const signal of SIGNALS_TO_FORWARD) process.removeListener(signal, onSignal)
  }
  process.on('exit', release)
  for (const signal of SIGNALS_TO_FORWARD) process.on(signal, onSignal)
  return removeHooks
}

/** The address the servers Annalist spawns listen on. */
export const LOOPBACK = '127.0.0.1'

/** `count` distinct TCP ports on the loopback interface that were free a moment ago: all are held until the last is found. */
export async function freeLoopbackPorts(count: number): Promise<number[]> {
  const servers: Server[] = []
  try {
    for (let i = 0; i < count; i += 1) {
      const server = createServer()
      servers.push(server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(0, LOOPBACK, () => resolve())
      })
    }
    return servers.map((server) => (server.address() as AddressInfo).port)
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))))
  }
}

/** A TCP port on the loopback interface that was free a moment ago. */
export async function freeLoopbackPort(): Promise<number> {
  const [port = 0] = await freeLoopbackPorts(1)
  return port
}

/** Size of a file, 0 when it does not exist: where a server's new output will start in an appended log. */
export async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size
  } catch {
    return 0
  }
}

/** The last `lines` non-empty lines a log got after offset `from` (at most its last 16 KiB), skipping our `--- ` headers. */
export async function readLogTail(logFile: string, from: number, lines: number): Promise<string[]> {
  try {
    const handle = await open(logFile, 'r')
    try {
      const size = (await handle.stat()).size
      const start = Math.max(from, size - 16_384)
      const buffer = Buffer.alloc(Math.max(0, size - start))
      await handle.read(buffer, 0, buffer.length, start)
      return buffer
        .toString('utf8')
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line.length > 0 && !line.startsWith('--- '))
        .slice(-lines)
    } finally {
      await handle.close()
    }
  } catch {
    return []
  }
}

/** Whether `promise` settles within `ms`. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([promise.then(() => true as const), timedOut])
  } finally {
    clearTimeout(timer)
  }
}

/** Thrown when a spawned local server exits or does not answer in time; the message ends with its last log lines. */
export class ServerStartError extends Error {
  constructor(
    message: string,
    readonly logFile: string,
    readonly logTail: readonly string[],
  ) {
    super(`${message} (log ${logFile})${logTail.length > 0 ? `: ${logTail.join(' | ')}` : ''}`)
    this.name = 'ServerStartError'
  }
}

/** How to start one local server process, and how to tell it is ready. */
export interface ServerProcessSpec<Ready> {
  /** What it is, in messages: `temporal dev server`, `llama.cpp server`. */
  readonly name: string
  /** Where it answers, in messages: `at 127.0.0.1:7233`. */
  readonly where: string
  readonly command: string
  readonly args: readonly string[]
  /** The command as the log's header line shows it (default: `command` and `args`). */
  readonly shownCommand?: string
  readonly env: NodeJS.ProcessEnv
  /** Output is appended here; without it, a temporary file that stop() removes. */
  readonly logFile?: string
  /** Prefix of that temporary directory. */
  readonly tempLogPrefix: string
  readonly startTimeoutMs: number
  readonly stopGraceMs: number
  readonly pollMs: number
  /** One readiness check: what the server is once it answers, or why it is not ready yet. */
  readonly ready: () => Promise<{ readonly ready: Ready } | { readonly notYet: string }>
  /** The error a failed start throws (a ServerStartError subclass naming the server). */
  readonly error: (message: string, logFile: string, logTail: readonly string[]) => ServerStartError
}

/** A started local server: what its readiness check returned, and how to stop it. */
export interface StartedServerProcess<Ready> {
  readonly ready: Ready
  readonly pid: number
  readonly logFile: string
  /** SIGTERM, then SIGKILL after the grace period; safe to call twice. */
  stop(): Promise<void>
}

const LOG_TAIL_LINES = 10

/**
 * Spawns a server in its own process group with its output appended to a log, tied to this process's life
 * (releaseWithThisProcess), and polls `ready` until it answers. A server that exits or does not answer in time is
 * killed, and `spec.error` is thrown with the tail of what it logged.
 */
export async function startServerProcess<Ready>(spec: ServerProcessSpec<Ready>): Promise<StartedServerProcess<Ready>> {
  const tempLogDir = spec.logFile === undefined ? await mkdtemp(join(tmpdir(), spec.tempLogPrefix)) : undefined
  const logFile = spec.logFile ?? join(tempLogDir ?? tmpdir(), 'server.log')
  const logStart = await fileSize(logFile)
  const logFd = openSync(logFile, 'a')
  writeSync(logFd, `--- ${new Date().toISOString()} ${spec.shownCommand ?? `${spec.command} ${spec.args.join(' ')}`}\n`)
  const child = (() => {
    try {
      return spawn(spec.command, spec.args, { detached: true, stdio: ['ignore', logFd, logFd], env: spec.env })
    } finally {
      closeSync(logFd)
    }
  })()
  child.unref()

  let exitStatus: string | undefined
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitStatus = signal ? `signal ${signal}` : `code ${code}`
      resolve()
    })
    child.once('error', (error) => {
      exitStatus = error.message
      resolve()
    })
  })

  const removeHooks = releaseWithThisProcess(() => {
    if (exitStatus === undefined) child.kill('SIGTERM')
    if (tempLogDir !== undefined) rmSync(tempLogDir, { recursive: true, force: true })
  })

  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= (async () => {
      removeHooks()
      if (exitStatus === undefined) {
        child.kill('SIGTERM')
        if (!(await settlesWithin(exited, spec.stopGraceMs))) {
          child.kill('SIGKILL')
          await exited
        }
      }
      if (tempLogDir !== undefined) await rm(tempLogDir, { recursive: true, force: true })
    })()
    return stopping
  }

  const fail = async (message: string): Promise<never> => {
    const logTail = await readLogTail(logFile, logStart, LOG_TAIL_LINES)
    removeHooks()
    if (exitStatus === undefined) {
      child.kill('SIGKILL')
      await exited
    }
    throw spec.error(message, logFile, logTail)
  }

  const deadline = Date.now() + spec.startTimeoutMs
  for (;;) {
    if (exitStatus !== undefined) return fail(`${spec.name} exited during start (${exitStatus})`)
    const answer = await spec.ready()
    if ('ready' in answer) return { ready: answer.ready, pid: child.pid as number, logFile, stop }
    if (Date.now() > deadline) return fail(`${spec.name} ${spec.where} not ready after ${Math.round(spec.startTimeoutMs / 1000)}s (${answer.notYet})`)
    await Promise.race([new Promise((resolve) => setTimeout(resolve, spec.pollMs)), exited])
  }
}

/**
 * Starts a server on freshly chosen ports, choosing again when another process took a port between the choice and the
 * server's bind (its log says `address already in use`); not when the caller fixed the port.
 */
export async function startOnFreePorts<T>(start: () => Promise<T>, options: { portFixed: boolean; attempts?: number }): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await start()
    } catch (error) {
      const portRace = error instanceof ServerStartError && error.logTail.some((line) => /address already in use/i.test(line))
      if (!portRace || options.portFixed || attempt >= (options.attempts ?? 3)) throw error
    }
  }
}
