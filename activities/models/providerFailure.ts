import { APICallError } from '@ai-sdk/provider'

/** A provider's own error code or type token, as it may be recorded: a short identifier, never prose. */
const PROVIDER_TOKEN = /^[A-Za-z0-9_.:-]{1,64}$/

/**
 * What may be recorded about a failed provider call, in events that tenants read through the audit trail, in Temporal
 * failures and in logs: the HTTP status, and the provider's own error code or type when its structured body gives a
 * token-shaped one (`server_error`, `overloaded_error`, `context_length_exceeded`); for a call that got no HTTP answer,
 * the system error code (`ECONNREFUSED`). Never the provider's free text: it can echo the prompt, personal data, or,
 * from a shared gateway, other requests' content. Example: `HTTP 503, provider code server_error`.
 */
export function providerFailureSummary(error: unknown): string {
  if (APICallError.isInstance(error) && error.statusCode !== undefined) {
    const code = providerErrorToken(error.data) ?? providerErrorToken(parsedJson(error.responseBody))
    return code === undefined ? `HTTP ${error.statusCode}` : `HTTP ${error.statusCode}, provider code ${code}`
  }
  const systemCode = systemErrorCode(error)
  return systemCode === undefined ? 'no HTTP response' : `no HTTP response, ${systemCode}`
}

/** The first `code` token along the cause chain (fetch's TypeError wraps Node's `ECONNREFUSED`, `ENOTFOUND`, ...). */
function systemErrorCode(error: unknown): string | undefined {
  let current = error
  for (let depth = 0; depth < 4 && current !== null && typeof current === 'object'; depth += 1) {
    const code = tokenOf((current as { code?: unknown }).code)
    if (code !== undefined) return code
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

/**
 * The `code`, else the `type`, of an OpenAI-style `{ error: { code, type } }` or Anthropic-style `{ error: { type } }`
 * body, or of a vLLM-style body that carries them at the top (whose numeric `code` only repeats the status).
 */
function providerErrorToken(body: unknown): string | undefined {
  if (body === null || typeof body !== 'object') return undefined
  const inner = (body as { error?: unknown }).error
  const { code, type } = (inner !== null && typeof inner === 'object' ? inner : body) as { code?: unknown; type?: unknown }
  return (typeof code === 'string' ? tokenOf(code) : undefined) ?? tokenOf(type) ?? tokenOf(code)
}

function tokenOf(value: unknown): string | undefined {
  const text = typeof value === 'number' && Number.isInteger(value) ? String(value) : value
  return typeof text === 'string' && PROVIDER_TOKEN.test(text) ? text : undefined
}

function parsedJson(text: string | undefined): unknown {
  if (text === undefined) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
