import { STATUS_CODES } from 'node:http'
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod'
import { redactSecrets } from '../historian/redact'
import { InvalidIdentifierError } from '../historian/streams'
import { InvalidQueryError } from '../projections/queryFilters'
import { UnknownApiKeyError } from './keys'
import type { ErrorBody } from './schemas'

/** An error as the API answers it. */
export interface ErrorResponse {
  readonly status: number
  readonly body: ErrorBody
  /** Set for 5xx: the error was not the caller's fault and should be logged with its stack. */
  readonly unexpected: boolean
}

/** Query functions name some filters differently from the query string; the caller should see the name they sent. */
const PARAMETER_OF_FILTER: Readonly<Record<string, string>> = {
  'time range': 'from',
  eventTypes: 'eventType',
  'event type': 'eventType',
  promptTemplateVersion: 'promptVersion',
  'prompt template version': 'promptVersion',
  'model version': 'modelVersion',
  afterPosition: 'after',
  'after position': 'after',
  afterSequence: 'after',
  'after sequence': 'after',
  'error code': 'errorCode',
}

function badRequest(parameter: string, message: string): ErrorResponse {
  return { status: 400, body: { error: 'Bad Request', message: redactSecrets(message.split('\n')[0]!), parameter }, unexpected: false }
}

/**
 * Maps an error to its response: invalid filters, identifiers and parameters -> 400 naming the parameter; an unknown key
 * ID -> 404 (only callers who may revoke any key get this far); other client
 * errors Fastify raises (4xx) -> that status with its message; anything else -> 500 with a generic body, nothing leaked.
 * Messages pass through historian/redact.ts: they are echoed to the caller and copied into the access log.
 */
export function errorResponse(error: unknown): ErrorResponse {
  if (error instanceof InvalidQueryError) return badRequest(PARAMETER_OF_FILTER[error.filter] ?? error.filter, error.message)
  if (error instanceof UnknownApiKeyError) return { status: 404, body: { error: 'Not Found', message: error.message }, unexpected: false }
  if (error instanceof InvalidIdentifierError) return badRequest(error.kind === 'tenant' ? 'tenantId' : 'taskId', error.message)
  if (hasZodFastifySchemaValidationErrors(error)) {
    const issue = error.validation[0]!
    const unrecognized = (issue.params as { keys?: unknown }).keys
    if (issue.keyword === 'unrecognized_keys' && Array.isArray(unrecognized)) {
      const names = unrecognized.map(String)
      return badRequest(names[0] ?? 'query', `unknown parameter${names.length > 1 ? 's' : ''} ${names.map((name) => JSON.stringify(name.slice(0, 64))).join(', ')}`)
    }
    const parameter = issue.instancePath.split('/')[1] || 'query'
    const message = issue.keyword === 'invalid_type' && issue.message?.includes('received array') ? 'may be given only once' : (issue.message ?? 'invalid value')
    return badRequest(parameter, `invalid ${parameter}: ${message}`)
  }
  const status = (error as { statusCode?: unknown } | null)?.statusCode
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { status, body: { error: STATUS_CODES[status] ?? 'Client Error', message: redactSecrets((error as Error).message.split('\n')[0]!) }, unexpected: false }
  }
  return { status: 500, body: { error: 'Internal Server Error', message: 'the request failed on the server; it has been logged' }, unexpected: true }
}
