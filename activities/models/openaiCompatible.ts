import type { LanguageModelV4 } from '@ai-sdk/provider'
import { createOpenAICompatible } from '@ai-sdk/openai-compatible'

/** Provider name of OpenAI-compatible models in model references. */
export const OPENAI_COMPATIBLE_PROVIDER = 'openai-compatible'

/** Where an OpenAI-compatible chat-completions endpoint lives. */
export interface OpenAICompatibleSettings {
  /** Base URL including the API version path, e.g. `http://127.0.0.1:8000/v1`. */
  baseURL: string
  apiKey?: string
  /** Extra HTTP headers sent with every request. */
  headers?: Record<string, string>
}

/**
 * A chat model served by any OpenAI-compatible endpoint (vLLM, Ollama, LM Studio, OpenAI, ...).
 *
 * The provider is deliberately named `openai-compatible`: the SDK copies `providerOptions[<provider name>]` into the
 * request body, so naming it `annalist` would send Annalist's call context (tenant and task ids) to the model server.
 */
export function openAICompatibleModel(settings: OpenAICompatibleSettings, modelName: string): LanguageModelV4 {
  const provider = createOpenAICompatible({
    name: OPENAI_COMPATIBLE_PROVIDER,
    baseURL: settings.baseURL,
    ...(settings.apiKey === undefined ? {} : { apiKey: settings.apiKey }),
    ...(settings.headers === undefined ? {} : { headers: settings.headers }),
  })
  return provider.chatModel(modelName)
}
