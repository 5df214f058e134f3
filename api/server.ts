import fastifySwagger from '@fastify/swagger'
import Fastify, { type FastifyInstance } from 'fastify'
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod'
import type pg from 'pg'
import { Counter, Registry } from 'prom-client'
import type { SigningKeyStore } from '../historian/evidence/signingKeys'
import type { TenantKeyRing } from '../historian/integrity/tenantKeyRing'
import type { EventStore } from '../historian/port'
import { redactError } from '../historian/redact'
import { defaultProjections } from '../projections/defaultProjections'
import { projectionLag, registerProjectionMetrics } from '../projections/lag'
import { addAccessControl, refuseClientError, refuseMalformedUrl, type AccessLogDeps } from './accessControl'
import { DEFAULT_REFUSALS_LOGGED_PER_MINUTE } from './accessLog'
import type { ApiDeps, CancelTask, RedriveTask } from './apiDeps'
import { errorResponse } from './errorResponse'
import { addRateLimits, DEFAULT_RATE_LIMITS, type RateLimits } from './rateLimits'
import { requireWholeNumbers } from './wholeNumbers'
import { analyticsRoutes } from './routes/analyticsRoutes'
import { operationsRoutes } from './routes/operationsRoutes'
import { operatorRoutes } from './routes/operatorRoutes'
import { signingKeyRoutes } from './routes/signingKeyRoutes'
import { TenantApiVersion, tenantRoutes } from './routes/tenantRoutes'
import { ExportPacer } from '../projections/export/tenantExport'

/**
 * How long the server waits for a request, and how big its body may be. None of these bounds a response: a long
 * streamed export is not cut (Node's requestTimeout ends once the request is fully received).
 */
export interface ApiTimeouts {
  /** Until the request's headers are complete (Node's headersTimeout); at most requestTimeoutMs. */
  readonly headersTimeoutMs: number
  /** Until the whole request, body included, is received (Node's requestTimeout); then 408 and the connection closes. */
  readonly requestTimeoutMs: number
  /** How long an idle keep-alive connection stays open between requests. */
  readonly keepAliveTimeoutMs: number
  /** The largest request body accepted; a larger one gets 413. */
  readonly bodyLimitBytes: number
}

/** The timeouts of `buildApiServer` and `annalist serve` unless configured otherwise (docs/api.md). */
export const DEFAULT_API_TIMEOUTS: ApiTimeouts = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  bodyLimitBytes: 64 * 1024,
}

/** What the API server is built from. */
export interface ApiServerOptions {
  readonly pool: pg.Pool
  readonly store: EventStore
  readonly keyRing: TenantKeyRing
  /** The clock for default time windows and lag; defaults to the system clock (the database clock for lag). */
  readonly now?: () => Date
  /** Where unexpected errors (5xx) are reported with their stack; defaults to stderr. */
  readonly onError?: (error: unknown) => void
  /** The Prometheus registry /metrics exposes; the server adds its request counter and the projection lag gauges. */
  readonly registry?: Registry
  /** How to redrive a task (Temporal); without it the redrive route answers 503. */
  readonly redriveTask?: RedriveTask
  /** How to cancel a task (Temporal); without it the cancel route answers 503. */
  readonly cancelTask?: CancelTask
  /** The evidence signing keys GET /v1/keys/signing publishes; without them the route answers 503. */
  readonly signingKeys?: SigningKeyStore
  /** Request timeouts and body limit; each unset one has its DEFAULT_API_TIMEOUTS value. */
  readonly timeouts?: Partial<ApiTimeouts>
  /** Per-key and per-tenant rate and concurrency limits; each unset one has its DEFAULT_RATE_LIMITS value. */
  readonly limits?: Partial<RateLimits>
  /**
   * The proxies whose X-Forwarded-For is believed (addresses or CIDRs); default none: the client address is the
   * socket's, and X-Forwarded-For is ignored.
   */
  readonly trustedProxies?: readonly string[]
  /** Refusals without a valid key logged row by row per client address, minute, status and reason (default 10). */
  readonly refusalsLoggedPerMinute?: number
}

/** A copy of `error` whose message and stack carry no secret (the original keeps its class for the receiver's checks). */
function redactedError(error: Error): Error {
  const copy = Object.create(Object.getPrototypeOf(error) as object) as Error
  Object.assign(copy, error)
  copy.message = redactError(error)
  copy.stack = redactError(error, true)
  return copy
}

function checkedTimeouts(timeouts: ApiTimeouts): ApiTimeouts {
  requireWholeNumbers('API timeout', timeouts)
  if (timeouts.headersTimeoutMs > timeouts.requestTimeoutMs) {
    throw new RangeError(`API headersTimeoutMs (${timeouts.headersTimeoutMs}) must not exceed requestTimeoutMs (${timeouts.requestTimeoutMs})`)
  }
  return timeouts
}

function reportToStderr(error: unknown): void {
  process.stderr.write(`[annalist api] ${redactError(error, true)}\n`)
}

/**
 * Builds the tenant-scoped HTTP API (not listening: call `listen`, or `inject` in tests). Routes are under /v1 (and the
 * tenant routes also under /v2) except /healthz, /openapi.json and /metrics. See docs/api.md for authentication, the
 * isolation rule, ordering and cursors, the limits and timeouts, and the access log.
 */
export function buildApiServer(options: ApiServerOptions): FastifyInstance {
  const report = options.onError ?? reportToStderr
  // Every error report goes through the redaction of historian/redact.ts, whoever receives it.
  const onError = (error: unknown): void => report(error instanceof Error ? redactedError(error) : redactError(error))
  const { pool, store, keyRing, now, redriveTask, cancelTask, signingKeys } = options
  const deps: ApiDeps = { pool, store, keyRing, now, redriveTask, cancelTask, signingKeys }
  const registry = options.registry ?? new Registry()
  const requests = new Counter({
    name: 'annalist_api_requests_total',
    help: 'API requests answered, by route pattern, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  })
  const projections = defaultProjections().map((projection) => projection.name)
  registerProjectionMetrics(registry, () => projectionLag(deps.pool, deps.store, projections, deps.now?.()))

  const timeouts = checkedTimeouts({ ...DEFAULT_API_TIMEOUTS, ...options.timeouts })
  const logDeps: AccessLogDeps = { pool, onError, refusalsLoggedPerMinute: options.refusalsLoggedPerMinute ?? DEFAULT_REFUSALS_LOGGED_PER_MINUTE }
  const app = Fastify({
    logger: false,
    routerOptions: { maxParamLength: 1_000 },
    frameworkErrors: refuseMalformedUrl(logDeps),
    clientErrorHandler: refuseClientError(logDeps),
    trustProxy: options.trustedProxies && options.trustedProxies.length > 0 ? [...options.trustedProxies] : false,
    bodyLimit: timeouts.bodyLimitBytes,
    requestTimeout: timeouts.requestTimeoutMs,
    keepAliveTimeout: timeouts.keepAliveTimeoutMs,
    // Node checks the headers and request timeouts every connectionsCheckingInterval (30 s by default): check often
    // enough that a timeout ends near its time.
    http: { headersTimeout: timeouts.headersTimeoutMs, connectionsCheckingInterval: Math.min(1_000, timeouts.headersTimeoutMs) },
  })
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  addAccessControl(app, logDeps)
  addRateLimits(app, { ...DEFAULT_RATE_LIMITS, ...options.limits })

  app.setErrorHandler(async (error, request, reply) => {
    const response = errorResponse(error)
    if (response.unexpected) onError(error)
    request.deniedReason = response.status === 400 ? `bad request: ${response.body.message}` : response.unexpected ? 'server error' : response.body.message
    return reply.code(response.status).send(response.body)
  })
  app.setNotFoundHandler(async (request, reply) => {
    request.deniedReason = 'no such route'
    return reply.code(404).send({ error: 'Not Found', message: `no route ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}` })
  })
  app.addHook('onResponse', async (request, reply) => {
    requests.inc({ route: request.routeOptions.url ?? 'unmatched', method: request.method, status: String(reply.statusCode) })
  })

  app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Annalist API',
        version: '2.0.0',
        description:
          'Tenant-scoped audit trail, task summaries and exports, cross-tenant analytics for the analyst role, and operator actions ' +
          '(redrive, key revocation), and the public keys that verify signed evidence. Every route declares the permission it needs (docs/roles.md).',
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'an API key from `annalist api-keys create`' } } },
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  })
  app.register(operationsRoutes, { registry })
  // One pacer per server, shared by both versions: its exports take turns and leave most of the thread to other requests.
  const exportPacer = new ExportPacer()
  for (const version of Object.values(TenantApiVersion)) app.register(tenantRoutes, { prefix: `/${version}`, deps, version, exportPacer })
  app.register(analyticsRoutes, { prefix: '/v1', deps })
  app.register(operatorRoutes, { prefix: '/v1', deps })
  app.register(signingKeyRoutes, { prefix: '/v1', deps })
  return app
}
