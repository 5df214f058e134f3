import type { PGlite } from '@electric-sql/pglite'

/** Protocol messages after which a connection may hand PGlite's single session to another one (unless inside a transaction). */
const SESSION_BOUNDARY = new Set([
  0x53, // 'S' Sync: ends an extended-protocol exchange (Parse/Bind/Describe/Execute)
  0x51, // 'Q' simple Query
  0x58, // 'X' Terminate
  0x70, // 'p' password / SASL response
])

interface QueuedMessage {
  readonly handlerId: number
  readonly message: Uint8Array
  readonly onData: (data: Uint8Array) => void
  readonly resolve: (bytes: number) => void
  readonly reject: (error: Error) => void
}

/** A startup message has no type byte: it starts with its int32 length, whose first byte is 0 for any real startup packet. */
function isBoundary(message: Uint8Array): boolean {
  const type = message[0]
  return type === undefined || type === 0x00 || SESSION_BOUNDARY.has(type)
}

/**
 * Shares PGlite's one session between many socket connections, the way a single-session server must: a connection
 * keeps the session from its first message until it reaches a protocol boundary (Sync, a simple Query) while no
 * transaction is open. pglite-socket's own queue switches connections between any two messages outside a transaction,
 * which interleaves one client's Parse/Bind/Execute with another's ("bind message supplies 1 parameters, but prepared
 * statement requires 3") as soon as two processes send parameterized queries at once.
 *
 * It implements the queue interface PGLiteSocketHandler calls: enqueue, clearQueueForHandler, clearTransactionIfNeeded,
 * getQueueLength. That interface is internal to pglite-socket (not exported, not documented), which is why package.json
 * pins @electric-sql/pglite-socket to one exact version: upgrade it only together with this class. Upstream bug:
 * https://github.com/electric-sql/pglite/issues/1046 (fix proposed in https://github.com/electric-sql/pglite/pull/977).
 */
export class SessionQueue {
  private queue: QueuedMessage[] = []
  private owner: number | null = null
  private processing = false

  constructor(private readonly db: PGlite) {}

  enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ handlerId, message, onData, resolve, reject })
      void this.process()
    })
  }

  getQueueLength(): number {
    return this.queue.length
  }

  /** A connection went away: drop what it queued. */
  clearQueueForHandler(handlerId: number): void {
    const dropped = this.queue.filter((queued) => queued.handlerId === handlerId)
    this.queue = this.queue.filter((queued) => queued.handlerId !== handlerId)
    for (const queued of dropped) queued.reject(new Error('connection closed'))
  }

  /** A connection went away while holding the session: roll back its open transaction and free the session. */
  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    if (this.owner !== handlerId) return
    if (this.db.isInTransaction()) await this.db.exec('ROLLBACK')
    this.owner = null
    await this.process()
  }

  private next(): QueuedMessage | undefined {
    const index = this.owner === null ? 0 : this.queue.findIndex((queued) => queued.handlerId === this.owner)
    if (index < 0) return undefined
    return this.queue.splice(index, 1)[0]
  }

  private async process(): Promise<void> {
    if (this.processing) return
    this.processing = true
    try {
      for (let queued = this.next(); queued; queued = this.next()) {
        this.owner = queued.handlerId
        let bytes = 0
        try {
          await this.db.runExclusive(() =>
            this.db.execProtocolRawStream(queued!.message, {
              onRawData: (data) => {
                bytes += data.length
                queued!.onData(data)
              },
            }),
          )
          queued.resolve(bytes)
        } catch (error) {
          queued.reject(error as Error)
        }
        if (isBoundary(queued.message) && !this.db.isInTransaction()) this.owner = null
      }
    } finally {
      this.processing = false
    }
  }
}
