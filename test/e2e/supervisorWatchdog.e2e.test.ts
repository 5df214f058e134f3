import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { SUPERVISOR_PID_VARIABLE } from '../../dev/supervisor/supervisorWatchdog'
import { freshPostgresDatabase } from '../support/databases'
import { waitUntil } from '../support/waitUntil'

const CLI = fileURLToPath(new URL('../../bin/annalist-dev.js', import.meta.url))

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
}

describe('children of a SIGKILLed supervisor', () => {
  const started: ChildProcess[] = []
  afterAll(() => started.forEach((child) => child.kill('SIGKILL')))

  it('a projector exits on its own when its supervisor dies without stopping it', async () => {
    const database = await freshPostgresDatabase()
    try {
      const supervisor = spawn('sleep', ['300'])
      const projector = spawn(process.execPath, [CLI, 'projector'], {
        env: { ...process.env, DATABASE_URL: database.url, [SUPERVISOR_PID_VARIABLE]: String(supervisor.pid) },
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      started.push(supervisor, projector)
      let stderr = ''
      projector.stderr!.on('data', (chunk) => (stderr += chunk))
      // Running: it stays up while the supervisor lives.
      await waitUntil(
        'the projector to start following the log',
        () => {
          if (projector.exitCode !== null) throw new Error(`the projector exited with code ${projector.exitCode}`)
          return stderr.includes('following the')
        },
        { timeoutMs: 30_000, intervalMs: 50, detail: () => stderr },
      )
      expect(await exited(projector, 1_500)).toBe(false)
      supervisor.kill('SIGKILL')
      expect(await exited(projector, 10_000)).toBe(true)
      expect(stderr).toMatch(/supervisor \d+ is gone: stopping/)
    } finally {
      await database.close()
    }
  }, 60_000)
})
