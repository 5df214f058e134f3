import { describe, expect, it } from 'vitest'
import { DEFAULT_ADDRESS_RETENTION_DAYS } from '../../api/accessLog'
import { apiServerConfigFromEnv } from '../../cli/runtime/apiServerConfig'
import { ConfigError, loadConfig } from '../../cli/runtime/config'

describe('apiServerConfigFromEnv', () => {
  it('leaves every limit to the server defaults when nothing is set, and trusts no proxy', () => {
    expect(apiServerConfigFromEnv({})).toEqual({
      timeouts: {},
      limits: {},
      trustedProxies: [],
      refusalsLoggedPerMinute: undefined,
      addressRetentionDays: DEFAULT_ADDRESS_RETENTION_DAYS,
    })
  })

  it('reads the limits, timeouts, trusted proxies and retention', () => {
    const config = apiServerConfigFromEnv({
      ANNALIST_TRUSTED_PROXIES: '10.0.0.1, 10.1.0.0/16,::1,fd00::/8',
      ANNALIST_ADDRESS_RETENTION_DAYS: '7',
      ANNALIST_API_REQUEST_TIMEOUT_MS: '45000',
      ANNALIST_API_RATE_PER_KEY: '120',
      ANNALIST_API_EXPENSIVE_IN_FLIGHT_PER_TENANT: '8',
      ANNALIST_API_REFUSALS_LOGGED_PER_MINUTE: '0',
    })
    expect(config).toEqual({
      timeouts: { requestTimeoutMs: 45000 },
      limits: { requestsPerKeyPerMinute: 120, expensiveInFlightPerTenant: 8 },
      trustedProxies: ['10.0.0.1', '10.1.0.0/16', '::1', 'fd00::/8'],
      refusalsLoggedPerMinute: 0,
      addressRetentionDays: 7,
    })
  })

  it.each([
    ['ANNALIST_TRUSTED_PROXIES', 'proxy.internal'],
    ['ANNALIST_TRUSTED_PROXIES', '10.0.0.0/33'],
    ['ANNALIST_ADDRESS_RETENTION_DAYS', '0'],
    ['ANNALIST_API_RATE_PER_KEY', '1.5'],
    ['ANNALIST_API_BODY_LIMIT_BYTES', 'lots'],
  ])('refuses %s=%s with an error naming the variable', (variable, value) => {
    expect(() => apiServerConfigFromEnv({ [variable]: value })).toThrow(ConfigError)
    expect(() => apiServerConfigFromEnv({ [variable]: value })).toThrow(new RegExp(`^${variable}: `))
  })

  it('refuses a headers timeout longer than the request timeout, naming the variable', () => {
    expect(() => apiServerConfigFromEnv({ ANNALIST_API_HEADERS_TIMEOUT_MS: '5000', ANNALIST_API_REQUEST_TIMEOUT_MS: '1000' })).toThrow(/^ANNALIST_API_HEADERS_TIMEOUT_MS: /)
  })

  it('reads the statement timeout with the common configuration', () => {
    expect(loadConfig({ ANNALIST_STATEMENT_TIMEOUT_MS: '1500' }).statementTimeoutMs).toBe(1500)
    expect(loadConfig({}).statementTimeoutMs).toBeUndefined()
    expect(() => loadConfig({ ANNALIST_STATEMENT_TIMEOUT_MS: '-1' })).toThrow(/^ANNALIST_STATEMENT_TIMEOUT_MS: /)
  })
})
