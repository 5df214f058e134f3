import { open, readFile, rm, stat, utimes } from 'node:fs/promises'

/** A lock file whose owner stopped touching it for this long belongs to a dead process. */
const LOCK_STALE_MS = 60_000
const LOCK_HEARTBEAT_MS = 10_000
const LOCK_POLL_MS = 1_000

export interface FileLockOptions {
  /** What the lock guards, for messages: `temporal CLI build` gives "another temporal CLI build holds ...". */
  readonly what: string
  /** Receives one line when another process holds the lock and we start waiting for it. */
  readonly onWait?: (line: string) => void
  /** How long to wait for another holder before giving up. */
  readonly waitLimitMs: number
}

/** Thrown when another process held a lock file for longer than the caller was willing to wait. */
export class FileLockTimeoutError extends Error {
  constructor(
    readonly lockPath: string,
    readonly what: string,
  ) {
    super(`timed out waiting for the ${what} lock ${lockPath}`)
    this.name = 'FileLockTimeoutError'
  }
}

/**
 * Runs `fn` holding an exclusive lock file (created with O_EXCL, holding our pid, touched every few seconds). A lock
 * whose owner died or stopped touching it is taken over. `fn` learns whether it got the lock at once (true) or after
 * waiting for another holder (false), who may have done the work already.
 */
export async function withFileLock<T>(
  lockPath: string,
  options: FileLockOptions,
  fn: (lockIsFresh: boolean) => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + options.waitLimitMs
  let waited = false
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx')
      try {
        await handle.writeFile(`${process.pid}\n`)
      } finally {
        await handle.close()
      }
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    if (await isLockStale(lockPath)) {
      await rm(lockPath, { force: true })
      continue
    }
    if (!waited) options.onWait?.(`another ${options.what} holds ${lockPath}; waiting for it`)
    waited = true
    if (Date.now() > deadline) throw new FileLockTimeoutError(lockPath, options.what)
    await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS))
  }
  const heartbeat = setInterval(() => {
    const now = new Date()
    utimes(lockPath, now, now).catch(() => undefined)
  }, LOCK_HEARTBEAT_MS)
  heartbeat.unref()
  try {
    return await fn(!waited)
  } finally {
    clearInterval(heartbeat)
    await rm(lockPath, { force: true })
  }
}

/** Whether a process with this pid exists (one we may not signal counts). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function isLockStale(lockPath: string): Promise<boolean> {
  try {
    const [content, info] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)])
    const pid = Number.parseInt(content, 10)
    if (Number.isInteger(pid) && pid > 0 && !isProcessAlive(pid)) return true
    return Date.now() - info.mtimeMs > LOCK_STALE_MS
  } catch (error) {
    // Gone between our attempts: not stale, just free.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw error
  }
}
