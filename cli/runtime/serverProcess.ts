import { open, stat } from 'node:fs/promises'

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
