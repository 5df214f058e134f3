import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible'
import { Role, type Principal } from './roles'
import type { ErrorBody } from './schemas'
import { requireWholeNumbers } from './wholeNumbers'

/**
 * How much one API key, and one tenant's tenant keys together, may ask of one API instance (never a global limit, so
 * no caller can use up anyone else's share). Counters live in this process's memory: N instances allow N times these.
 */
export interface RateLimits {
  /** Requests per minute one key may make to the authenticated routes. */
  readonly requestsPerKeyPerMinute: number
  /** Requests per minute the tenant keys of one tenant together may make to expensive routes. */
  readonly expensivePerTenantPerMinute: number
  /** Expensive requests one key may have in flight (until its response is finished or the client goes). */
  readonly expensiveInFlightPerKey: number
  /** Expensive requests the tenant keys of one tenant together may have in flight. */
  readonly expensiveInFlightPerTenant: number
}

/** The limits of `buildApiServer` and `annalist serve` unless configured otherwise (docs/api.md). */
export const DEFAULT_RATE_LIMITS: RateLimits = {
  requestsPerKeyPerMinute: 600,
  expensivePerTenantPerMinute: 60,
  expensiveInFlightPerKey: 2,
  expensiveInFlightPerTenant: 4,
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on routes whose answer may take long or read much (export, audit, analytics): concurrency-limited too. */
    expensive?: boolean
  }
}

/**
 * The one 429 body, whichever limit refused: a caller learns neither which bucket was full nor whether others share it.
 */
export const TOO_MANY_REQUESTS: ErrorBody = { error: 'Too Many Requests', message: 'too many requests for this API key: retry after the time in Retry-After' }

/** Why a request was refused, for the access log, and when to retry. */
interface Refusal {
  readonly reason: 'rate limited' | 'too many concurrent requests'
  readonly retryAfterSeconds: number
}

const MINUTE = 60

/** A rate bucket: `points` requests per minute per key. */
const perMinute = (points: number) => new RateLimiterMemory({ points, duration: MINUTE })

/** A concurrency bucket: `points` requests in flight per key, taken on admission and given back when one ends. */
const inFlight = (points: number) => new RateLimiterMemory({ points, duration: 0 })

/** The limiter's rejection (a RateLimiterRes); anything else it throws is a real error. */
function rejection(error: unknown): RateLimiterRes {
  if (error instanceof RateLimiterRes) return error
  throw error
}

/** The per-key and per-tenant buckets of one API instance. */
class RequestLimiter {
  private readonly requestsPerKey: RateLimiterMemory
  private readonly expensivePerTenant: RateLimiterMemory
  private readonly inFlightPerKey: RateLimiterMemory
  private readonly inFlightPerTenant: RateLimiterMemory

  constructor(limits: RateLimits) {
    requireWholeNumbers('rate limit', limits)
    this.requestsPerKey = perMinute(limits.requestsPerKeyPerMinute)
    this.expensivePerTenant = perMinute(limits.expensivePerTenantPerMinute)
    this.inFlightPerKey = inFlight(limits.expensiveInFlightPerKey)
    this.inFlightPerTenant = inFlight(limits.expensiveInFlightPerTenant)
  }

  /**
   * Admits a request or says why not. An admitted expensive request holds an in-flight slot of its key (and of its
   * tenant, for tenant keys) until `release` is called. Only tenant keys count against their tenant's buckets:
   * analysts and operators reading a tenant use their own key's share, never the tenant's.
   */
  async admit(principal: Principal, expensive: boolean): Promise<{ refusal: Refusal } | { release: () => void }> {
    const tenant = principal.role === Role.tenant ? principal.tenantId : null
    const rated = await this.consumeRate(this.requestsPerKey, principal.keyId)
    if (rated) return { refusal: rated }
    if (!expensive) return { release: () => undefined }
    if (tenant !== null) {
      const tenantRated = await this.consumeRate(this.expensivePerTenant, tenant)
      if (tenantRated) return { refusal: tenantRated }
    }
    const releaseKey = await this.takeSlot(this.inFlightPerKey, principal.keyId)
    if (!releaseKey) return { refusal: { reason: 'too many concurrent requests', retryAfterSeconds: 1 } }
    if (tenant === null) return { release: releaseKey }
    const releaseTenant = await this.takeSlot(this.inFlightPerTenant, tenant)
    if (!releaseTenant) {
      releaseKey()
      return { refusal: { reason: 'too many concurrent requests', retryAfterSeconds: 1 } }
    }
    return {
      release: () => {
        releaseKey()
        releaseTenant()
      },
    }
  }

  private async consumeRate(bucket: RateLimiterMemory, key: string): Promise<Refusal | undefined> {
    try {
      await bucket.consume(key)
      return undefined
    } catch (error) {
      return { reason: 'rate limited', retryAfterSeconds: Math.max(1, Math.ceil(rejection(error).msBeforeNext / 1000)) }
    }
  }

  /** Takes one in-flight slot of `key`, or gives back the point a refused attempt counted; returns its release, once-only. */
  private async takeSlot(bucket: RateLimiterMemory, key: string): Promise<(() => void) | undefined> {
    try {
      await bucket.consume(key)
    } catch (error) {
      rejection(error)
      await bucket.reward(key)
      return undefined
    }
    let released = false
    return () => {
      if (released) return
      released = true
      void bucket.reward(key)
    }
  }
}

async function refuse(request: FastifyRequest, reply: FastifyReply, refusal: Refusal): Promise<FastifyReply> {
  request.deniedReason = refusal.reason
  return reply.code(429).header('retry-after', String(refusal.retryAfterSeconds)).send(TOO_MANY_REQUESTS)
}

/**
 * Adds the rate and concurrency limits to every authenticated route of `app`: an onRequest hook that runs after the
 * access control one (add it after `addAccessControl`), on requests it let through. A refused request gets the one 429
 * with Retry-After, nothing is queued; the access log records it with the reason. An expensive request's in-flight
 * slots are released when its raw response closes: finished, or the client went away, streamed responses included.
 */
export function addRateLimits(app: FastifyInstance, limits: RateLimits): void {
  const limiter = new RequestLimiter(limits)
  app.addHook('onRequest', async (request, reply) => {
    const principal = request.principal
    if (reply.sent || principal === undefined) return
    const admission = await limiter.admit(principal, request.routeOptions.config.expensive === true)
    if ('refusal' in admission) return refuse(request, reply, admission.refusal)
    reply.raw.once('close', admission.release)
  })
}
