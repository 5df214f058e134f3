import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { redactError, redactSecrets, redactValue } from '../../historian/redact'

const key = randomBytes(32).toString('base64url')

describe('redactSecrets', () => {
  it('replaces an API key wherever it appears', () => {
    expect(key).toHaveLength(43)
    expect(redactSecrets(`key ${key} was revoked`)).toBe('key [redacted] was revoked')
    expect(redactSecrets(`/v1/tenants/acme/audit?x=${key}`)).toBe('/v1/tenants/acme/audit?x=[redacted]')
  })

  it('replaces Bearer and Basic credentials, whatever their shape', () => {
    expect(redactSecrets('Authorization: Bearer abc.def')).toBe('Authorization: Bearer [redacted]')
    expect(redactSecrets('authorization: basic dXNlcjpwYXNz')).toBe('authorization: basic [redacted]')
  })

  it('replaces the password of a URL and keeps the rest', () => {
    expect(redactSecrets('connect postgres://annalist:s3cret@db:5432/annalist failed')).toBe('connect postgres://annalist:[redacted]@db:5432/annalist failed')
    expect(redactSecrets('esdb://admin:changeit@kurrentdb:2113?tls=false')).toBe('esdb://admin:[redacted]@kurrentdb:2113?tls=false')
  })

  it('replaces credentials named in a query string', () => {
    expect(redactSecrets('/v1/x?limit=5&access_token=short&token=t')).toBe('/v1/x?limit=5&access_token=[redacted]&token=[redacted]')
  })

  it('leaves plain text untouched', () => {
    const plain = 'tenant acme task t1: 3 events, hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, id 5f1e0c1a-6c3f-4f3e-9a43-1f6e2b1c7d00'
    expect(redactSecrets(plain)).toBe(plain)
    expect(redactSecrets('postgres://db:5432/annalist')).toBe('postgres://db:5432/annalist')
  })
})

describe('redactValue and redactError', () => {
  it('redacts strings in nested values and drops the values of credential names', () => {
    expect(redactValue({ limit: 5, api_key: 'anything', nested: [key, 'acme'] })).toEqual({ limit: 5, api_key: '[redacted]', nested: ['[redacted]', 'acme'] })
  })

  it('redacts an error message and its stack', () => {
    const error = new Error(`could not reach postgres://u:pw@h/db with ${key}`)
    expect(redactError(error)).toBe('could not reach postgres://u:[redacted]@h/db with [redacted]')
    expect(redactError(error, true)).not.toContain(key)
  })
})
