import type { AllSubscription, ReadAllOptions, RecordedEvent, Unsubscribe } from './port'

/** Produces a subscription's events until `stopRequested` resolves; its `finally` releases what it holds. */
export type EventSource = (stopRequested: Promise<void>, isStopped: () => boolean) => AsyncGenerator<RecordedEvent, void, undefined>

/**
 * An AllSubscription over an event source. `stop()` ends delivery at once: a pending `next()` resolves as done, no
 * event is handed out afterwards, and the source's `finally` has run when `stop()` resolves. A `break` out of
 * `for await` stops it too. A source that throws ends the iteration with its error, after releasing its resources.
 */
export class CatchUpSubscription implements AllSubscription {
  private stopped = false
  private resolveStop!: () => void
  private readonly stopRequested = new Promise<void>((resolve) => (this.resolveStop = resolve))
  private source: AsyncGenerator<RecordedEvent, void, undefined> | undefined
  private iterated = false

  constructor(private readonly open: EventSource) {}

  [Symbol.asyncIterator](): AsyncIterator<RecordedEvent> {
    if (this.iterated) throw new Error('a subscription can be iterated only once; subscribe again from your checkpoint')
    this.iterated = true
    return {
      next: () => this.next(),
      return: async () => {
        await this.stop()
        return { done: true, value: undefined }
      },
    }
  }

  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true
      this.resolveStop()
    }
    await this.source?.return(undefined)
  }

  private async next(): Promise<IteratorResult<RecordedEvent, undefined>> {
    const done = { done: true, value: undefined } as const
    if (this.stopped) return done
    this.source ??= this.open(this.stopRequested, () => this.stopped)
    let result: IteratorResult<RecordedEvent, void> | 'stopped'
    try {
      result = await Promise.race([this.source.next(), this.stopRequested.then(() => 'stopped' as const)])
    } catch (error) {
      this.stopped = true
      this.resolveStop()
      throw error
    }
    if (result === 'stopped' || this.stopped || result.done) {
      this.stopped = true
      return done
    }
    return { done: false, value: result.value }
  }
}

/** What a polling subscription reads from: the store's own global read and its append notifications. */
export interface PollingSource {
  readAll(options: ReadAllOptions): Promise<RecordedEvent[]>
  onAppend(listener: () => void): Promise<Unsubscribe>
}

export interface PollingOptions {
  readonly from?: bigint
  readonly batchSize: number
  /** How long to wait for an append notification before reading again anyway. */
  readonly pollIntervalMs: number
}

/**
 * A catch-up subscription built on `readAll`: reads batches after the checkpoint until a short batch, then waits for an
 * append notification or the poll interval, and reads on from the last delivered position. History and live events
 * come from the same read, so the handover has no gap and no duplicate, provided `readAll` never skips a position
 * (PostgreSQL: docs/ordering.md). The notification listener is registered before the first read, so an append made
 * between a read and the wait still wakes it.
 */
export function pollingSubscription(source: PollingSource, options: PollingOptions): CatchUpSubscription {
  const from = checkpointOf(options.from)
  return new CatchUpSubscription(async function* (stopRequested, isStopped) {
    const wakeup = new Wakeup(stopRequested)
    let unsubscribe: Unsubscribe | undefined
    try {
      unsubscribe = await source.onAppend(() => wakeup.wake())
    } catch {
      // No notifications: polling alone still delivers everything, only later.
    }
    try {
      let position = from
      while (!isStopped()) {
        const batch = await source.readAll({ after: position, maxCount: options.batchSize })
        for (const event of batch) {
          if (isStopped()) return
          position = event.position
          yield event
        }
        if (batch.length < options.batchSize) await wakeup.sleep(options.pollIntervalMs)
      }
    } finally {
      await unsubscribe?.().catch(() => undefined)
    }
  })
}

/** Refuses a checkpoint that is not a bigint >= 0. */
export function checkpointOf(from: bigint | undefined): bigint | undefined {
  if (from !== undefined && (typeof from !== 'bigint' || from < 0n)) throw new RangeError(`subscribeToAll: from must be a bigint position >= 0, got ${String(from)}`)
  return from
}

/** A sleep that ends early on a wake-up (remembered if it comes while awake) or when the subscription stops. */
class Wakeup {
  private pending = false
  private waker: (() => void) | undefined

  constructor(private readonly stopRequested: Promise<void>) {}

  wake(): void {
    if (this.waker) this.waker()
    else this.pending = true
  }

  async sleep(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false
      return
    }
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.stopRequested,
      new Promise<void>((resolve) => {
        this.waker = resolve
        timer = setTimeout(resolve, ms)
      }),
    ])
    clearTimeout(timer)
    this.waker = undefined
    this.pending = false
  }
}
