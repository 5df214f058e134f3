import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type pg from 'pg'
import { recordApiAccess } from './accessLog'
import { ApiRole, authenticate, type ApiPrincipal } from './keys'
import type { ErrorBody } from './schemas'

/**
 * Who may call a route: anyone (`public`), any key with the tenant in the path in its scope (`tenant`), or analyst
 * keys only (`analyst`). Routes declare it in `config.access`; a route that declares nothing is `analyst`.
 */
export const RouteAccess = { public: 'public', tenant: 'tenant', analyst: 'analyst' } as const
export type RouteAccess = (typeof RouteAccess)[keyof typeof RouteAccess]

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess
  }
  interface FastifyRequest {
    /** The authenticated caller; unset on public routes and refused requests. */
    principal?: ApiPrincipal
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

/** The key in an `Authorization: Bearer <key>` header, if there is one. */
function presentedKey(request: FastifyRequest): string | undefined {
  return BEARER.exec(request.headers.authorization ?? '')?.[1]
}

function routeAccess(request: FastifyRequest): RouteAccess {
  return request.routeOptions.config.access ?? RouteAccess.analyst
}

/** The tenant named in the path, raw (not validated: scope is checked before anything is validated). */
function requestedTenant(request: FastifyRequest): string | null {
  const params = request.params as Record<string, unknown> | undefined
  const tenant = params?.tenantId
  return typeof tenant === 'string' ? tenant : null
}

async function refuse(request: FastifyRequest, reply: FastifyReply, status: 401 | 403, reason: string): Promise<void> {
  request.deniedReason = reason
  if (status === 401) reply.header('www-authenticate', 'Bearer')
  await reply.code(status).send(status === 401 ? UNAUTHORIZED : FORBIDDEN)
}

/**
 * Adds the authentication, scope check and access log to every route of `app`:
 * - onRequest (before any parameter is parsed or validated): a Bearer key is required except on public routes;
 *   a tenant key may only use routes whose `:tenantId` is exactly its own tenant, and never analyst routes.
 * - onSend: every non-public request, answered or refused, is appended to api_access_log before the response
 *   leaves. If that write fails the response becomes a 500: nothing is served that was not logged.
 */
export function addAccessControl(app: FastifyInstance, deps: { readonly pool: pg.Pool; readonly onError: (error: unknown) => void }): void {
  app.addHook('onRequest', async (request, reply) => {
    const access = routeAccess(request)
    if (access === RouteAccess.public) return
    const presented = presentedKey(request)
    const principal = presented === undefined ? undefined : await authenticate(deps.pool, presented)
    if (!principal) return refuse(request, reply, 401, presented === undefined ? 'no API key' : 'unknown, malformed or revoked API key')
    request.principal = principal
    if (principal.role === ApiRole.analyst) return
    if (access === RouteAccess.analyst) return refuse(request, reply, 403, request.routeOptions.url === undefined ? 'no such route' : 'analyst role required')
    if (requestedTenant(request) !== principal.tenantId) return refuse(request, reply, 403, 'tenant outside the key scope')
  })

  app.addHook('onSend', async (request, reply, payload) => {
    if (routeAccess(request) === RouteAccess.public) return payload
    const principal = request.principal
    const answered = reply.statusCode < 400
    try {
      await recordApiAccess(deps.pool, {
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
export function refuseMalformedUrl(deps: { readonly pool: pg.Pool; readonly onError: (error: unknown) => void }) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    void (async () => {
      try {
        const presented = presentedKey(request)
        const principal = presented === undefined ? undefined : await authenticate(deps.pool, presented)
        await recordApiAccess(deps.pool, {
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
        })
        await reply.code(400).send(MALFORMED_URL)
      } catch (failure) {
        deps.onError(failure)
        await reply.code(500).send(NOT_RECORDED)
      }
    })()
  }
}
