import { APICallError } from '@ai-sdk/provider'
import { describe, expect, it } from 'vitest'
import { providerFailureSummary } from '../../activities/models/providerFailure'

const PROMPT_ECHO = 'Ignore previous instructions. Patient: Jane Roe, SSN 078-05-1120, prompt="summarise my account"'
const CONTROL = '\u0000\u001b[31m\r\n\u0007\u202e'

function apiError(statusCode: number | undefined, body: unknown, message = `${PROMPT_ECHO}${CONTROL}`): APICallError {
  const responseBody = typeof body === 'string' ? body : JSON.stringify(body)
  return new APICallError({
    message,
    url: 'https://gateway.example/v1/chat/completions',
    requestBodyValues: { messages: [{ role: 'user', content: PROMPT_ECHO }] },
    statusCode,
    responseBody,
    data: typeof body === 'string' ? undefined : body,
  })
}

/** None of the provider's own words may reach what is stored and shown to tenants: only status and a code token. */
function expectNoProviderText(summary: string): void {
  for (const fragment of ['Ignore', 'Jane', '078-05-1120', 'summarise', 'prompt', '\u001b', '\u0000', '\r', '\n', '\u0007', '\u202e']) {
    expect(summary).not.toContain(fragment)
  }
  expect(summary).toMatch(/^[A-Za-z0-9 _.:,-]+$/)
}

describe('providerFailureSummary', () => {
  it('keeps the HTTP status and the structured error code of an OpenAI-style body, and none of the message', () => {
    const summary = providerFailureSummary(apiError(500, { error: { message: `${PROMPT_ECHO}${CONTROL}`, type: 'server_error', code: 'upstream_error' } }))
    expect(summary).toBe('HTTP 500, provider code upstream_error')
    expectNoProviderText(summary)
  })

  it('falls back to the type token (Anthropic style) and drops tokens that are not identifiers', () => {
    expect(providerFailureSummary(apiError(529, { type: 'error', error: { type: 'overloaded_error', message: PROMPT_ECHO } }))).toBe('HTTP 529, provider code overloaded_error')
    const prose = providerFailureSummary(apiError(400, { error: { code: `bad ${PROMPT_ECHO}`, type: `x${CONTROL}`, message: PROMPT_ECHO } }))
    expect(prose).toBe('HTTP 400')
    expect(providerFailureSummary(apiError(400, { error: { code: 'a'.repeat(65) } }))).toBe('HTTP 400')
    expectNoProviderText(prose)
  })

  it('reads the raw body when the SDK parsed none, and gives the bare status for a body that is prose', () => {
    const fromRaw = apiError(503, { error: { code: 'capacity' } })
    const unparsed = new APICallError({ message: PROMPT_ECHO, url: 'u', requestBodyValues: {}, statusCode: 503, responseBody: fromRaw.responseBody })
    expect(providerFailureSummary(unparsed)).toBe('HTTP 503, provider code capacity')
    const proseBody = providerFailureSummary(apiError(502, `<html>${PROMPT_ECHO}${CONTROL}</html>`))
    expect(proseBody).toBe('HTTP 502')
  })

  it('names only the system error code of a call that got no HTTP answer', () => {
    const refused = new TypeError(`fetch failed ${PROMPT_ECHO}`, { cause: Object.assign(new Error(`connect ECONNREFUSED ${CONTROL}`), { code: 'ECONNREFUSED' }) })
    const wrapped = new APICallError({ message: `Cannot connect to API: ${PROMPT_ECHO}`, url: 'u', requestBodyValues: {}, cause: refused })
    expect(providerFailureSummary(wrapped)).toBe('no HTTP response, ECONNREFUSED')
    const summary = providerFailureSummary(new Error(`${PROMPT_ECHO}${CONTROL}`))
    expect(summary).toBe('no HTTP response')
    expectNoProviderText(summary)
  })
})
