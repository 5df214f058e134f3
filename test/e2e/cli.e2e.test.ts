import { describe, expect, it } from 'vitest'
import { runAnnalist as annalist, runAnnalistDev } from '../support/runCli'

describe('annalist CLI errors', () => {
  it('names an invalid tenant in one line, exits 1, and prints no stack trace', async () => {
    const result = await annalist(['audit', 'Bad-Tenant'])
    expect(result.code).toBe(1)
    const lines = result.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^annalist: invalid tenant ID "Bad-Tenant": tenant ID must match/)
    expect(result.stderr).not.toMatch(/\n\s+at /)
  })

  it('names the environment variable that is wrong', async () => {
    const result = await annalist(['audit', 'acme'], { DATABASE_URL: 'mysql://localhost/x' })
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toMatch(/^annalist: DATABASE_URL: must be a postgres:\/\/ or postgresql:\/\/ URL/)
    // Only the dev worker injects faults: it names a bad plan; the shipped CLI does not read the variable at all.
    const faults = await runAnnalistDev(['worker'], { ANNALIST_FAULTS: '{not json' })
    expect(faults.code).toBe(1)
    expect(faults.stderr.trim()).toMatch(/^annalist: ANNALIST_FAULTS is not a valid fault plan/)
    const ignored = await annalist(['audit', 'acme', '--format', 'json'], { ANNALIST_FAULTS: '{not json' })
    expect(ignored.stderr).not.toMatch(/ANNALIST_FAULTS/)
  })

  it('prints the stack trace with --verbose', async () => {
    const result = await annalist(['audit', 'Bad-Tenant', '--verbose'])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/InvalidIdentifierError: invalid tenant ID/)
    expect(result.stderr).toMatch(/\n\s+at /)
  })

  it('refuses out-of-range demo sizes (annalist-dev demo) before starting anything', async () => {
    const result = await runAnnalistDev(['demo', '--tenants', '0'])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe('annalist: --tenants must be a whole number from 1 to 10, got "0"  (run with --verbose for details)')
  })
})
