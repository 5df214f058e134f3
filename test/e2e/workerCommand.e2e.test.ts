import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, vi } from 'vitest'
import { generateIntegrityKey } from '../../historian/integrity/tenantKeyRing'
import { runAnnalist } from '../support/runCli'

const CLI = fileURLToPath(new URL('../../bin/annalist.js', import.meta.url))

describe('annalist worker: which Temporal it serves', () => {
  it('refuses to start without TEMPORAL_ADDRESS, in one line naming it, before opening storage or starting a server', async () => {
    const dataDir = path.join(mkdtempSync(path.join(tmpdir(), 'annalist-worker-')), 'data')
    const run = await runAnnalist(['worker'], { ANNALIST_DATA_DIR: dataDir, ANNALIST_INTEGRITY_KEY: generateIntegrityKey() })
    expect(run.code).toBe(1)
    const lines = run.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^annalist: TEMPORAL_ADDRESS: not set: .*--dev/)
    expect(run.stderr).not.toMatch(/dev server from|go install|building/)
    expect(existsSync(dataDir)).toBe(false)
  })

  it('refuses --dev together with TEMPORAL_ADDRESS', async () => {
    const run = await runAnnalist(['worker', '--dev'], { TEMPORAL_ADDRESS: '127.0.0.1:1', ANNALIST_INTEGRITY_KEY: generateIntegrityKey() })
    expect(run.code).toBe(1)
    expect(run.stderr.trim()).toMatch(/^annalist: TEMPORAL_ADDRESS: is set \(127\.0\.0\.1:1\), and --dev asks for a private dev server/)
  })

  it('starts a private dev server only with --dev, serves on it, and stops both on SIGTERM', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'annalist-worker-dev-'))
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(ANNALIST_|DATABASE_URL|ESDB_|TEMPORAL_ADDRESS|TEMPORAL_NAMESPACE)/.test(key)))
    const child = spawn(process.execPath, [CLI, 'worker', '--dev'], {
      env: { ...inherited, ANNALIST_DATA_DIR: dataDir, ANNALIST_INTEGRITY_KEY: generateIntegrityKey() },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    try {
      await vi.waitFor(() => expect(stderr).toMatch(/serving task queue \S+ on 127\.0\.0\.1:\d+ \(private dev server\)/), { timeout: 60_000, interval: 100 })
      expect(stderr).toMatch(/starting Temporal dev server from/)
    } finally {
      child.kill('SIGTERM')
    }
    expect(await exited).toBe(0)
    expect(readdirSync(dataDir)).toContain('pgdata')
  })
})
