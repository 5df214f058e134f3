import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { networkInterfaces, tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const CLI = fileURLToPath(new URL('../../bin/annalist.js', import.meta.url))
const DEV_CLI = fileURLToPath(new URL('../../bin/annalist-dev.js', import.meta.url))

/**
 * Runs `annalist projector --metrics-port 0 [args]` (or `annalist-dev projector` with `cli`) on a scratch PGlite, waits
 * for the line naming the metrics URL, fetches it, stops the projector with SIGTERM and returns the URL and the HTTP status.
 */
async function metricsOfProjector(args: readonly string[], cli = CLI): Promise<{ url: URL; status: number; fromOutside: 'answered' | 'refused' | 'no interface'; exitCode: number | null }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(ANNALIST_|DATABASE_URL|ESDB_|TEMPORAL_)/.test(key)))
  const child = spawn(process.execPath, [cli, 'projector', '--metrics-port', '0', ...args], {
    env: { ...env, ANNALIST_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'annalist-metrics-')) },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  try {
    const url = await new Promise<URL>((resolve, reject) => {
      let stderr = ''
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString()
        const match = /metrics on (http:\/\/\S+\/metrics)/.exec(stderr)
        if (match) resolve(new URL(match[1]!))
      })
      void exited.then((code) => reject(new Error(`projector exited ${code} before serving metrics:\n${stderr}`)))
    })
    const target = url.hostname === '0.0.0.0' ? new URL(url.href.replace('0.0.0.0', '127.0.0.1')) : url
    const response = await fetch(target)
    await response.arrayBuffer()
    const fromOutside = outsideAddress === undefined ? 'no interface' : await reachable(`http://${outsideAddress}:${url.port}/metrics`)
    child.kill('SIGTERM')
    return { url, status: response.status, fromOutside, exitCode: await exited }
  } finally {
    child.kill('SIGKILL')
  }
}

/** An IPv4 address of this machine other than loopback, if it has one: the printed URL alone proves nothing. */
const outsideAddress = Object.values(networkInterfaces())
  .flat()
  .find((address) => address !== undefined && address.family === 'IPv4' && !address.internal)?.address

async function reachable(url: string): Promise<'answered' | 'refused'> {
  try {
    await (await fetch(url)).arrayBuffer()
    return 'answered'
  } catch {
    return 'refused'
  }
}

describe('annalist projector --metrics-port', () => {
  it('listens on 127.0.0.1 by default', async () => {
    const { url, status, fromOutside, exitCode } = await metricsOfProjector([])
    expect(url.hostname).toBe('127.0.0.1')
    expect(status).toBe(200)
    expect(fromOutside).toBe(outsideAddress === undefined ? 'no interface' : 'refused')
    expect(exitCode).toBe(0)
  })

  it('listens where --metrics-host says', async () => {
    const { url, status, fromOutside } = await metricsOfProjector(['--metrics-host', '0.0.0.0'])
    expect(url.hostname).toBe('0.0.0.0')
    expect(status).toBe(200)
    expect(fromOutside).toBe(outsideAddress === undefined ? 'no interface' : 'answered')
  })
})

describe('annalist-dev projector --metrics-port', () => {
  it('listens on 127.0.0.1 by default and where --metrics-host says, like annalist projector', async () => {
    const loopback = await metricsOfProjector([], DEV_CLI)
    expect(loopback.url.hostname).toBe('127.0.0.1')
    expect(loopback.status).toBe(200)
    const everywhere = await metricsOfProjector(['--metrics-host', '0.0.0.0'], DEV_CLI)
    expect(everywhere.url.hostname).toBe('0.0.0.0')
    expect(everywhere.fromOutside).toBe(outsideAddress === undefined ? 'no interface' : 'answered')
  })
})
