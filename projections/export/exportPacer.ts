import { setTimeout as sleep } from 'node:timers/promises'

/**
 * How long the next export page waits, per millisecond the last one took: exports get at most a third of the thread.
 * A smaller pause lets three exports slow other requests more on PGlite (docs/benchmarks.md, apiIsolationUnderLoadRatio).
 */
const PAUSE_PER_WORK = 2

/**
 * Keeps the exports of one process in the background of the requests it also answers. Reading and writing an export
 * page is CPU work on the one event-loop thread (and, on embedded PGlite, the query runs on that thread too, in the one
 * session every request shares), so exports running flat out would keep every other request waiting behind their
 * pages. Through a pacer, the pages of all exports are worked one at a time, and after each the next waits twice as long
 * as that page took: exports together take at most about a third of the thread, and a request arriving meanwhile waits
 * for at most the page in progress. An export runs about a third as fast as flat out; none of them stops.
 */
export class ExportPacer {
  private tail: Promise<void> = Promise.resolve()

  /** Waits for this export's turn; call the returned function once the page is written. */
  async turn(): Promise<() => void> {
    let release!: () => void
    const done = new Promise<void>((resolve) => (release = resolve))
    const previous = this.tail
    this.tail = done
    await previous
    const started = performance.now()
    return () => {
      const took = performance.now() - started
      void sleep(took * PAUSE_PER_WORK).then(release)
    }
  }
}
