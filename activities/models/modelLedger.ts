import { appendFileSync } from 'node:fs'
import type { LanguageModelV4 } from '@ai-sdk/provider'
import { z } from 'zod'
import { ANNALIST_PROVIDER_OPTIONS_KEY, AnnalistCallOptions } from './modelClient'

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

/**
 * `model` with a ledger: before each call, one line naming it (from the call context in `providerOptions.annalist`) is
 * appended to `path`, synchronously, whatever then becomes of the call. Used for the scripted provider; real providers
 * write the same lines from their fetch (openaiCompatible.ts), as the request leaves.
 */
export function withCallLedger(model: LanguageModelV4, path: string, clock: () => number = Date.now): LanguageModelV4 {
  return {
    specificationVersion: model.specificationVersion,
    provider: model.provider,
    modelId: model.modelId,
    supportedUrls: model.supportedUrls,
    doGenerate: (options) => {
      const call = AnnalistCallOptions.parse(options.providerOptions?.[ANNALIST_PROVIDER_OPTIONS_KEY])
      appendLedgerCall(path, { ...call, modelId: model.modelId, ts: clock(), pid: process.pid })
      return model.doGenerate(options)
    },
    doStream: (options) => model.doStream(options),
  }
}
