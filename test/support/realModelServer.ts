import { inject } from 'vitest'

/** The real OpenAI-compatible inference server global setup started (or found at ANNALIST_LLM_BASE_URL) for this run. */
export interface RealModelServer {
  /** OpenAI base URL, ending in `/v1`. */
  readonly baseURL: string
  /** The model to ask for. */
  readonly modelId: string
}

/**
 * The run's real model server, or undefined when there is none. A test that needs it may skip only when it is not
 * configured and ANNALIST_TEST_LLM is not `required`, i.e. `describe.skipIf(mayRunWithoutRealModel())`; in CI
 * (ANNALIST_TEST_LLM=required) global setup fails instead of letting such a test skip.
 */
export function realModelServer(): RealModelServer | undefined {
  const baseURL = inject('llmBaseUrl')
  const modelId = inject('llmModelId')
  return baseURL && modelId ? { baseURL, modelId } : undefined
}

/** True when tests that need a real model may skip: no server is configured and ANNALIST_TEST_LLM is not `required`. */
export function mayRunWithoutRealModel(): boolean {
  return realModelServer() === undefined && process.env.ANNALIST_TEST_LLM?.trim() !== 'required'
}

/** The run's real model server; throws when there is none (call it only from tests guarded by mayRunWithoutRealModel). */
export function requireRealModelServer(): RealModelServer {
  const server = realModelServer()
  if (!server) throw new Error('no real model server in this run: run `npx annalist setup-local-llm`, or set ANNALIST_LLM_BASE_URL')
  return server
}
