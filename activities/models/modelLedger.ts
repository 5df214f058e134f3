import { appendFileSync } from 'node:fs'
import { z } from 'zod'

/**
 * One model call as the client-side ledger records it, written before the request leaves the process: by the scripted
 * model, and by the fetch of real providers (openaiCompatible.ts). Tests and the fault campaign count repeated calls with it.
 */
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
  /** The model name asked (a replay may override a role's model). */
  modelId: z.string().optional(),
  /** Which call of the step this is in its run: 0 first; a repair or a retry after a recorded failure counts up. */
  callIndex: z.number().int().nonnegative().optional(),
})
export type LedgerCall = z.infer<typeof LedgerCall>

/** Appends one call to the ledger file, synchronously, so the line is on disk before the request is sent. */
export function appendLedgerCall(path: string, call: LedgerCall): void {
  appendFileSync(path, `${JSON.stringify(call)}\n`)
}
