import { existsSync, readFileSync } from 'node:fs'
import { LedgerCall } from '../../activities/models/modelLedger'

export { LedgerCall } from '../../activities/models/modelLedger'

/** Reads the ledger; a half-written last line (its writer was SIGKILLed mid-append) is ignored, any other bad line throws. */
export function readModelLedger(path: string): LedgerCall[] {
  if (!existsSync(path)) return []
  const lines = readFileSync(path, 'utf8').split('\n')
  const calls: LedgerCall[] = []
  lines.forEach((line, index) => {
    if (line.trim() === '') return
    const isLast = index >= lines.length - 2
    try {
      calls.push(LedgerCall.parse(JSON.parse(line)))
    } catch (error) {
      if (!isLast) throw new Error(`model ledger ${path} line ${index + 1} is not a ledger entry: ${(error as Error).message}`)
    }
  })
  return calls
}
