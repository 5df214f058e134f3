import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { runAnnalist } from '../support/runCli'

/**
 * `start` and `api-keys create` check all their input before opening storage or connecting to Temporal: bad input
 * exits 1 with one line and leaves no data directory behind. Temporal and the database settings point at nothing, so a
 * run that got past validation would have created the PGlite data directory (or failed to connect) instead.
 */
describe('start and api-keys create validate before touching anything', () => {
  const freshDataDir = () => path.join(mkdtempSync(path.join(tmpdir(), 'annalist-validate-')), 'data')

  it.each([
    [['start', '--tenant', 'ACME', '--task', 't1', '--input', 'hello'], /^annalist: invalid tenant ID "ACME"/],
    [['start', '--tenant', 'acme', '--task', '../globex', '--input', 'hello'], /^annalist: invalid task ID/],
    [['start', '--tenant', 'acme', '--task', 't1', '--input', '   '], /^annalist: --input must be 1 to 100000 characters and not blank/],
    [['start', '--tenant', 'acme', '--task', 't1', '--input', 'hello', '--loop-iterations', '0'], /^annalist: .*--loop-iterations/],
    [['api-keys', 'create', '--tenant', 'ACME'], /^annalist: invalid tenant ID "ACME"/],
    [['api-keys', 'create', '--analyst', '--operator'], /^annalist: .*give at most one of --analyst and --operator/],
    [['api-keys', 'create', '--analyst', '--tenant', 'acme'], /^annalist: .*give no tenant ID/],
    [['api-keys', 'create', '--tenant', 'acme', '--label', 'bad\u0007label'], /^annalist: .*no control characters/],
  ] as const)('%j exits 1 with one line and creates no data directory', async (args, pattern) => {
    const dataDir = freshDataDir()
    const run = await runAnnalist(args, { ANNALIST_DATA_DIR: dataDir, TEMPORAL_ADDRESS: '127.0.0.1:9' })
    expect(run.code, run.stderr).toBe(1)
    expect(run.stdout).toBe('')
    const lines = run.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(pattern)
    expect(existsSync(dataDir)).toBe(false)
  })
})
