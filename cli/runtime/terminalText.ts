/**
 * Control characters that must never reach a terminal as they are: C0 controls other than tab and newline (ESC starts
 * escape sequences, CR rewrites a line), DEL, C1 controls (U+009B is a one-byte CSI), and the Unicode bidirectional
 * overrides and isolates that make text display in another order than it reads.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g

/**
 * `text` made safe to print to a terminal: every unsafe control character is shown as its escape (`\x1B`, `\u202E`)
 * instead of acting. Human-readable output (tables, progress, one-line errors) passes model- and tenant-provided text
 * through this; JSON and CSV, which are data, keep it exact.
 */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (char) => {
    const code = char.codePointAt(0)!
    return code <= 0xff ? `\\x${code.toString(16).toUpperCase().padStart(2, '0')}` : `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`
  })
}
