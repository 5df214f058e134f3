import { isIP } from 'node:net'
import { z } from 'zod'
import { DEFAULT_ADDRESS_RETENTION_DAYS } from '../../api/accessLog'
import type { RateLimits } from '../../api/rateLimits'
import { DEFAULT_API_TIMEOUTS, type ApiTimeouts } from '../../api/server'
import { ConfigError, emptyAsUnset } from './config'

const whole = (min: number) => z.preprocess(emptyAsUnset, z.coerce.number().int('must be a whole number').min(min, `must be at least ${min}`).optional())

/** One trusted proxy: an IPv4 or IPv6 address, optionally with a /prefix (CIDR). */
function isAddressOrCidr(entry: string): boolean {
  const [address = '', prefix, ...rest] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || rest.length > 0) return false
  if (prefix === undefined) return true
  const bits = /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN
  return bits >= 0 && bits <= (family === 4 ? 32 : 128)
}

const ApiEnv = z.object({
  ANNALIST_TRUSTED_PROXIES: z.preprocess(
    emptyAsUnset,
    z
      .string()
      .transform((value) => value.split(',').map((entry) => entry.trim()))
      .refine((entries) => entries.every(isAddressOrCidr), 'must be a comma-separated list of IP addresses or CIDRs, e.g. 10.0.0.1,10.1.0.0/16')
      .optional(),
  ),
  ANNALIST_ADDRESS_RETENTION_DAYS: whole(1),
  ANNALIST_API_HEADERS_TIMEOUT_MS: whole(1),
  ANNALIST_API_REQUEST_TIMEOUT_MS: whole(1),
  ANNALIST_API_KEEP_ALIVE_TIMEOUT_MS: whole(1),
  ANNALIST_API_BODY_LIMIT_BYTES: whole(1),
  ANNALIST_API_RATE_PER_KEY: whole(1),
  ANNALIST_API_EXPENSIVE_RATE_PER_TENANT: whole(1),
  ANNALIST_API_EXPENSIVE_IN_FLIGHT_PER_KEY: whole(1),
  ANNALIST_API_EXPENSIVE_IN_FLIGHT_PER_TENANT: whole(1),
  ANNALIST_API_REFUSALS_LOGGED_PER_MINUTE: whole(0),
})

/** What `annalist serve` reads from its environment beyond the common configuration (docs/api.md, "Limits and timeouts"). */
export interface ApiServerConfig {
  readonly timeouts: Partial<ApiTimeouts>
  readonly limits: Partial<RateLimits>
  readonly trustedProxies: readonly string[]
  readonly refusalsLoggedPerMinute?: number
  /** Days client addresses are kept in the access log. */
  readonly addressRetentionDays: number
}

/** Drops the unset entries, so the server's defaults apply to them. */
function setOnly<T extends object>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)) as Partial<T>
}

/** Reads and validates the API server's variables; throws ConfigError naming the first bad one. */
export function apiServerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ApiServerConfig {
  const parsed = ApiEnv.safeParse(env)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new ConfigError(String(issue.path[0] ?? 'environment'), issue.message)
  }
  const vars = parsed.data
  const headersTimeoutMs = vars.ANNALIST_API_HEADERS_TIMEOUT_MS ?? DEFAULT_API_TIMEOUTS.headersTimeoutMs
  const requestTimeoutMs = vars.ANNALIST_API_REQUEST_TIMEOUT_MS ?? DEFAULT_API_TIMEOUTS.requestTimeoutMs
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError('ANNALIST_API_HEADERS_TIMEOUT_MS', `must not exceed the request timeout (ANNALIST_API_REQUEST_TIMEOUT_MS, ${requestTimeoutMs} ms)`)
  }
  return {
    timeouts: setOnly({
      headersTimeoutMs: vars.ANNALIST_API_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: vars.ANNALIST_API_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: vars.ANNALIST_API_KEEP_ALIVE_TIMEOUT_MS,
      bodyLimitBytes: vars.ANNALIST_API_BODY_LIMIT_BYTES,
    }),
    limits: setOnly({
      requestsPerKeyPerMinute: vars.ANNALIST_API_RATE_PER_KEY,
      expensivePerTenantPerMinute: vars.ANNALIST_API_EXPENSIVE_RATE_PER_TENANT,
      expensiveInFlightPerKey: vars.ANNALIST_API_EXPENSIVE_IN_FLIGHT_PER_KEY,
      expensiveInFlightPerTenant: vars.ANNALIST_API_EXPENSIVE_IN_FLIGHT_PER_TENANT,
    }),
    trustedProxies: vars.ANNALIST_TRUSTED_PROXIES ?? [],
    refusalsLoggedPerMinute: vars.ANNALIST_API_REFUSALS_LOGGED_PER_MINUTE,
    addressRetentionDays: vars.ANNALIST_ADDRESS_RETENTION_DAYS ?? DEFAULT_ADDRESS_RETENTION_DAYS,
  }
}
