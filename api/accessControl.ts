import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type pg from 'pg'
import { CREDENTIAL_NAMES, isKeyShaped } from '../historian/redact'
import { recordApiAccess, recordRefusedAccess, type ApiAccess } from './accessLog'
import { authenticate } from './keys'
import { holds, may, PERMISSIONS, Target, type Permission, type Principal } from './roles'
import type { ErrorBody } from './schemas'

/** Finds the tenant a request acts on (null: none, e.g. a global key), from its raw, unvalidated parameters. */
export type TargetTenantOf = (request: FastifyRequest, pool: pg.Pool) => Promise<string | null>

/**
 * What a route requires: nothing (`public`), or a permission of api/roles.ts on the request's target tenant, by default
 * the `:tenantId` path parameter. A route that declares nothing (only the not-found handler) needs a valid key.
 */
export interface RouteAccess {
  readonly permission: Permission | 'public'
  /** Where the target tenant comes from when it is not the `:tenantId` path parameter. */
  readonly targetTenant?: TargetTenantOf
}

/** The config of a route anyone may call. */
export const PUBLIC_ROUTE: { readonly access: RouteAccess } = { access: { permission: 'public' } }

/** The config of a route that needs `permission`: `{ config: requires('task.cancel') }`. */
export function requires(permission: Permission, targetTenant?: TargetTenantOf): { readonly access: RouteAccess } {
  return { access: { permission, ...(targetTenant ? { targetTenant } : {}) } }
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess
  }
  interface FastifyRequest {
    /** The authenticated caller; unset on public routes and refused requests. */
    principal?: Principal
    /** The validated filters of the query answered, for the access log. */
    accessQuery?: Record<string, unknown>
    /** How many rows the response carries, for the access log. */
    rowsReturned?: number
    /** Why the request was refused or failed, for the access log. */
    deniedReason?: string
  }
}

/** The one 401 body: it never says whether a key was malformed, unknown or revoked. */
export const UNAUTHORIZED: ErrorBody = { error: 'Unauthorized', message: 'a valid API key is required: Authorization: Bearer <key>' }

/**
 * The one 403 body: identical whether the tenant asked for exists or not, and whether or not it is even a valid ID,
 * so a refusal reveals nothing about other tenants.
 */
export const FORBIDDEN: ErrorBody = { error: 'Forbidden', message: 'this API key may not read that resource' }

const BEARER = /^Bearer +(\S+) *$/i

/** The one 400 body for a credential in the query string (docs/api.md): keys travel only in the Authorization header. */
export const CREDENTIAL_IN_QUERY: ErrorBody = {
  error: 'Bad Request',
  message: 'credentials are refused in the query string: send the API key only as Authorization: Bearer <key>',
  parameter: 'query',
}

/** True when the query string names a credential (access_token, api_key, key, token, ...) or holds a key-shaped value. */
function credentialInQuery(request: FastifyRequest): boolean {
  const query = (request.query ?? {}) as Record<string, unknown>
  const values = (value: unknown): string[] => (Array.isArray(value) ? value.map(String) : [String(value)])
  return Object.entries(query).some(
    ([name, value]) => CREDENTIAL_NAMES.has(name.toLowerCase()) || isKeyShaped(name) || values(value).some((item) => isKeyShaped(item)),
  )
}

/** The key in an `Authorization: Bearer <key>` header, if there is one. */
function presentedKey(request: FastifyRequest): string | undefined {
  return BEARER.exec(request.headers.authorization ?? '')?.[1]
}

function isPublic(request: FastifyRequest): boolean {
  return request.routeOptions.config.access?.permission === 'public'
}

/** The tenant named in the path, raw (not validated: scope is checked before anything is validated). */
function requestedTenant(request: FastifyRequest): string | null {
  const params = request.params as Record<string, unknown> | undefined
  const tenant = params?.tenantId
  return typeof tenant === 'string' ? tenant : null
}

/** Why `principal` may not call the route (for the access log only), or undefined when it may. */
async function deniedReason(principal: Principal, access: RouteAccess, request: FastifyRequest, pool: pg.Pool): Promise<string | undefined> {
  const { permission } = access
  if (permission === 'public') return undefined
  if (!holds(principal, permission)) return `role ${principal.role} lacks ${permission}`
  if (PERMISSIONS[permission].target === Target.global) return may(principal, permission, null) ? undefined : `${permission} needs a key without a tenant scope`
  // The target is looked up only for scoped keys: a global key may act on any tenant, existing or not.
  const target = principal.tenantId === null ? null : access.targetTenant ? await access.targetTenant(request, pool) : requestedTenant(request)
  return may(principal, permission, target) ? undefined : 'tenant outside the key scope'
}

async function refuse(request: FastifyRequest, reply: FastifyReply, status: 401 | 403, reason: string): Promise<void> {
  request.deniedReason = reason
  if (status === 401) reply.header('www-authenticate', 'Bearer')
  await reply.code(status).send(status === 401 ? UNAUTHORIZED : FORBIDDEN)
}

/** What the access control and the access log need: the database, the error reporter, how many refusals to log in full. */
export interface AccessLogDeps {
  readonly pool: pg.Pool
  readonly onError: (error: unknown) => void
  /** Refusals without a valid key logged row by row per client address, minute, status and reason; the rest are counted. */
  readonly refusalsLoggedPerMinute: number
}

/**
 * Logs `access`: a row of its own when a valid key was presented; otherwise through the refusal counts, which log only
 * the first few rows of each client address and minute (api/accessLog.ts).
 */
function logAccess(deps: AccessLogDeps, access: ApiAccess): Promise<void> {
  return access.keyId === null ? recordRefusedAccess(deps.pool, access, deps.refusalsLoggedPerMinute) : recordApiAccess(deps.pool, access)
}

/**
 * Adds the authentication, scope check and access log to every route of `app`:
 * - onRequest (before any parameter is parsed or validated): a credential in the query string is refused with a 400
 *   before any key is looked up; then a Bearer key is required except on public routes, and
 *   the key must hold the route's permission on the request's target tenant (`may`). A key scoped to a tenant may
 *   only use routes whose target is exactly its own tenant. Every refusal is the one FORBIDDEN body.
 * - onSend: every non-public request, answered or refused, is logged before the response leaves (requests without a
 *   valid key at a bounded rate: `logAccess`). If that write fails the response becomes a 500: nothing is served that
 *   was not logged.
 */
export function addAccessControl(app: FastifyInstance, deps: AccessLogDeps): void {
  app.addHook('onRequest', async (request, reply) => {
    // Before anything else, public routes included: a key in a URL ends up in proxies' and browsers' histories.
    if (credentialInQuery(request)) {
      request.deniedReason = 'credential in the query string'
      return reply.code(400).send(CREDENTIAL_IN_QUERY)
    }
    const access = request.routeOptions.config.access
    if (access?.permission === 'public') return
    const presented = presentedKey(request)
    const principal = presented === undefined ? undefined : await authenticate(deps.pool, presented)
    if (!principal) return refuse(request, reply, 401, presented === undefined ? 'no API key' : 'unknown, malformed or revoked API key')
    request.principal = principal
    if (access === undefined) return principal.tenantId === null ? undefined : refuse(request, reply, 403, 'no such route')
    const denied = await deniedReason(principal, access, request, deps.pool)
    if (denied !== undefined) return refuse(request, reply, 403, denied)
  })

  app.addHook('onSend', async (request, reply, payload) => {
    if (isPublic(request)) return payload
    const principal = request.principal
    const answered = reply.statusCode < 400
    try {
      await logAccess(deps, {
        keyId: principal?.keyId ?? null,
        role: principal?.role ?? null,
        keyTenantId: principal?.tenantId ?? null,
        method: request.method,
        route: request.routeOptions.url ?? request.url.split('?')[0] ?? request.url,
        requestedTenant: requestedTenant(request),
        query: (answered ? request.accessQuery : undefined) ?? ((request.query ?? {}) as Record<string, unknown>),
        status: reply.statusCode,
        rowsReturned: answered ? (request.rowsReturned ?? null) : 0,
        deniedReason: answered ? null : (request.deniedReason ?? `status ${reply.statusCode}`),
        clientAddress: request.ip,
      })
      return payload
    } catch (error) {
      deps.onError(error)
      reply.code(500).header('content-type', 'application/json; charset=utf-8')
      return JSON.stringify(NOT_RECORDED)
    }
  })
}

const NOT_RECORDED: ErrorBody = { error: 'Internal Server Error', message: 'the request could not be recorded in the access log, so it was not answered' }
const MALFORMED_URL: ErrorBody = { error: 'Bad Request', message: 'the URL is malformed or a path parameter is too long', parameter: 'path' }

/**
 * Fastify's `frameworkErrors` handler: a URL the router cannot decode, or an over-long path parameter, gets a generic
 * 400 that does not echo it. No hook runs for these requests, so the refusal is logged here, with the caller if the
 * key is valid.
 */
export function refuseMalformedUrl(deps: AccessLogDeps) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    void (async () => {
      try {
        const presented = presentedKey(request)
        const principal = presented === undefined ? undefined : await authenticate(deps.pool, presented)
        await logAccess(deps, {
          keyId: principal?.keyId ?? null,
          role: principal?.role ?? null,
          keyTenantId: principal?.tenantId ?? null,
          method: request.method,
          route: request.url.split('?')[0] ?? request.url,
          requestedTenant: null,
          query: {},
          status: 400,
          rowsReturned: 0,
          deniedReason: `malformed URL (${error.code})`,
          clientAddress: request.ip,
        })
        await reply.code(400).send(MALFORMED_URL)
      } catch (failure) {
        deps.onError(failure)
        await reply.code(500).send(NOT_RECORDED)
      }
    })()
  }
}

/** The status and one-line reason of a connection error Node's HTTP parser or server raised before any route ran. */
function clientErrorAnswer(code: string | undefined): { status: 400 | 408 | 431; reason: string } {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, reason: 'request not received in time' }
  if (code === 'HPE_HEADER_OVERFLOW') return { status: 431, reason: 'headers too large' }
  return { status: 400, reason: `malformed request (${code ?? 'unknown error'})` }
}

/**
 * Fastify's `clientErrorHandler` (Node's 'clientError'): a request the parser refused (headers over the size limit:
 * 431, malformed: 400) or that was not received within the headers or request timeout (408) is recorded with the
 * socket's address, like any refusal without a valid key, then answered as Fastify would and the connection closed.
 * A connection the client reset is not a refusal and is not recorded.
 */
export function refuseClientError(deps: AccessLogDeps) {
  return (error: Error & { code?: string }, socket: Socket): void => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return
    const { status, reason } = clientErrorAnswer(error.code)
    logAccess(deps, {
      keyId: null,
      role: null,
      keyTenantId: null,
      method: '-',
      route: '(unparsed request)',
      requestedTenant: null,
      query: {},
      status,
      rowsReturned: 0,
      deniedReason: reason,
      clientAddress: socket.remoteAddress ?? null,
    }).catch(deps.onError)
    if (socket.writable && socket.bytesWritten === 0) {
      const body = JSON.stringify({ error: STATUS_CODES[status], message: reason })
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`)
    }
    socket.destroy()
  }
}
