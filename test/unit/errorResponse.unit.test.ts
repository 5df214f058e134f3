import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { errorResponse } from '../../api/errorResponse'
import { InvalidQueryError } from '../../projections/queryFilters'

const key = randomBytes(32).toString('base64url')

describe('errorResponse', () => {
  it('redacts a key echoed in a client error message', () => {
    const clientError = Object.assign(new Error(`Body is not valid JSON near ${key}`), { statusCode: 400 })
    expect(errorResponse(clientError).body.message).toBe('Body is not valid JSON near [redacted]')
    const response = errorResponse(new InvalidQueryError('eventType', `unknown event type ${JSON.stringify(key)}`))
    expect(response.body.message).not.toContain(key)
  })

  it('keeps a message without secrets as it was', () => {
    const clientError = Object.assign(new Error('Unsupported Media Type: text/plain'), { statusCode: 415 })
    expect(errorResponse(clientError).body).toEqual({ error: 'Unsupported Media Type', message: 'Unsupported Media Type: text/plain' })
  })
})
