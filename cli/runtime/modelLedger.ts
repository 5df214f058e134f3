import { existsSync, readFileSync } from 'node:fs'
import { z } from 'zod'

/** One model call as the scripted model's ledger records it, at the moment the call starts. */
export const LedgerCall = z.object({
  ts: z.number(),
  pid: z.number().int(),
  tenantId: z.string(),
  taskId: z.string(),
  role: z.string(),
  activityId: z.string(),
  attempt: z.number().int(),
  /** The calling activity's Temporal run (absent in ledgers written before replays existed). */
  runId: z.string().optional(),
  /** The model name that answered (a replay may override a role's model). */
  modelId: z.string().optional(),
})
export type LedgerCall = z.infer<typeof LedgerCall>

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
