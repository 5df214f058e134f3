import { terminalSafe } from './terminalText'
import cliProgress from 'cli-progress'

const SPINNER_FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'] as const
const SPINNER_FRAME_MS = 100

/** A long task with no known end, shown as a spinner with elapsed seconds, a counter and the latest detail. */
export interface ActivityIndicator {
  /** Counts one more unit of work (a downloaded module, say) and shows `detail` next to the counter. */
  tick(detail?: string): void
  /** Shows `detail` without counting. */
  note(detail: string): void
  /** Removes the spinner; prints `finalLine` (if any) in its place. */
  stop(finalLine?: string): void
}

export interface ActivityIndicatorOptions {
  /** What is going on, e.g. `building temporal CLI`. */
  readonly label: string
  /** Noun after the counter, e.g. `modules downloaded`. */
  readonly countLabel: string
  /** Defaults to stderr, so that stdout stays free for a command's result. */
  readonly stream?: NodeJS.WriteStream
  /** How often a non-terminal stream (CI logs) gets a progress line. */
  readonly nonTtyIntervalMs?: number
}

/**
 * Starts an indeterminate progress display: an animated spinner on a terminal, and a plain progress line every
 * `nonTtyIntervalMs` elsewhere (CI logs), both through cli-progress.
 */
export function startActivityIndicator(options: ActivityIndicatorOptions): ActivityIndicator {
  const stream = options.stream ?? process.stderr
  const isTty = stream.isTTY === true
  let count = 0
  let detail = ''
  const bar = new cliProgress.SingleBar({
    stream,
    fps: 10,
    hideCursor: isTty ? true : null,
    clearOnComplete: true,
    noTTYOutput: true,
    notTTYSchedule: options.nonTtyIntervalMs ?? 15_000,
    linewrap: false,
    format: (_options, params) => {
      const elapsedMs = Date.now() - params.startTime
      const frame = isTty ? `${SPINNER_FRAMES[Math.floor(elapsedMs / SPINNER_FRAME_MS) % SPINNER_FRAMES.length]} ` : ''
      const line = `${frame}${terminalSafe(options.label)} | ${Math.floor(elapsedMs / 1000)}s | ${count} ${options.countLabel}`
      return detail ? `${line} | ${detail}` : line
    },
  })
  bar.start(1, 0)
  return {
    tick(next) {
      count += 1
      if (next !== undefined) detail = next
      bar.update(0)
    },
    note(next) {
      detail = next
      bar.update(0)
    },
    stop(finalLine) {
      bar.stop()
      if (finalLine !== undefined) stream.write(`${finalLine}\n`)
    },
  }
}
