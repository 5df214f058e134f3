import { terminalSafe } from './terminalText'

/** Prints an error as one clear line (the stack only with --verbose) and exits non-zero. */
export function reportFatal(error: unknown, verbose: boolean): never {
  if (verbose && error instanceof Error) {
    console.error(error.stack ?? error.message)
    if (error.cause) console.error('caused by:', error.cause)
  } else {
    const message = error instanceof Error ? error.message : String(error)
    console.error(`annalist: ${terminalSafe(message.split('\n')[0]!)}${verbose ? '' : '  (run with --verbose for details)'}`)
  }
  process.exit(1)
}
