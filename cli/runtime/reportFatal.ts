import { redactError, redactSecrets } from '../../historian/redact'
import { terminalSafe } from './terminalText'

/**
 * Prints an error as one clear line (the stack only with --verbose), with every secret redacted and no control
 * character left to act on the terminal, and exits non-zero.
 */
export function reportFatal(error: unknown, verbose: boolean): never {
  if (verbose && error instanceof Error) {
    console.error(terminalSafe(redactError(error, true)))
    if (error.cause) console.error('caused by:', terminalSafe(redactSecrets(error.cause instanceof Error ? (error.cause.stack ?? error.cause.message) : String(error.cause))))
  } else {
    const message = redactError(error)
    console.error(`annalist: ${terminalSafe(message.split('\n')[0]!)}${verbose ? '' : '  (run with --verbose for details)'}`)
  }
  process.exit(1)
}
