import type { LanguageModelV4 } from '@ai-sdk/provider'
import { createOpenAICompatible } from '@ai-sdk/openai-compatible'
import type { OutputDialect } from '../../historian/events/common'
import { LEDGER_CONTEXT_HEADER } from './modelClient'
import { appendLedgerCall, LedgerCall } from './modelLedger'

/** Provider name of OpenAI-compatible models in model references. */
export const OPENAI_COMPATIBLE_PROVIDER = 'openai-compatible'

/** Where an OpenAI-compatible chat-completions endpoint lives, and how it is asked for structured output. */
export interface OpenAICompatibleSettings {
  /** Base URL including the API version path, e.g. `http://127.0.0.1:8000/v1`. */
  baseURL: string
  apiKey?: string
  /** Extra HTTP headers sent with every request. */
  headers?: Record<string, string>
  /** The structured-output dialect the endpoint speaks (see OutputDialect). */
  dialect: OutputDialect
  /** The client-side call ledger: one line per request, written before it leaves. */
  ledgerPath?: string
}

/**
 * llama-cpp-python's dialect: `response_format: {type: "json_object", schema}`. The provider, told it supports structured
 * outputs, builds OpenAI's `json_schema` form; this moves the schema where that server reads it. (The provider's own
 * fallback sends a bare `json_object` without the schema, which constrains nothing but JSON syntax.)
 */
export function jsonObjectWithSchema(body: Record<string, unknown>): Record<string, unknown> {
  const format = body.response_format as { type?: string; json_schema?: { schema?: unknown } } | undefined
  if (format?.type !== 'json_schema' || format.json_schema?.schema === undefined) return body
  return { ...body, response_format: { type: 'json_object', schema: format.json_schema.schema } }
}

/**
 * The fetch every OpenAI-compatible request goes through: it takes Annalist's call context out of the request's headers
 * (it never reaches the model server) and, with a ledger, records the call before the request leaves, so a crash after
 * the request was sent still leaves the call on record.
 */
export function ledgerFetch(ledgerPath: string | undefined): typeof globalThis.fetch {
  return async (input, init) => {
    const headers = new Headers(init?.headers)
    const context = headers.get(LEDGER_CONTEXT_HEADER)
    headers.delete(LEDGER_CONTEXT_HEADER)
    if (context !== null && ledgerPath !== undefined) {
      const call = LedgerCall.omit({ ts: true, pid: true }).parse(JSON.parse(context))
      appendLedgerCall(ledgerPath, { ...call, ts: Date.now(), pid: process.pid })
    }
    return globalThis.fetch(input, { ...init, headers })
  }
}

/**
 * A chat model served by any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, llama-cpp-python, LM Studio, OpenAI, ...).
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
    supportsStructuredOutputs: settings.dialect !== 'prompt',
    ...(settings.dialect === 'json_object' ? { transformRequestBody: jsonObjectWithSchema } : {}),
    fetch: ledgerFetch(settings.ledgerPath),
  })
  return provider.chatModel(modelName)
}
