import { createServer, type Server } from 'node:http'
import { Registry } from 'prom-client'
import { defaultProjections } from '../../projections/defaultProjections'
import { projectionLag, registerProjectionMetrics } from '../../projections/lag'
import { ProjectionRunner } from '../../projections/runner'
import { loadConfig } from '../runtime/config'
import { openStorage } from '../runtime/storage'
import type { ProcessHooks } from '../runtime/processHooks'
import { parseWholeNumber } from './lag'

/** Options of `annalist projector`. */
export interface ProjectorOptions {
  readonly batchSize?: string
  readonly metricsPort?: string
  /** The address the metrics endpoint listens on; 127.0.0.1 unless given. */
  readonly metricsHost?: string
}

/**
 * `annalist projector`: follows the event log and keeps the read models current until SIGINT/SIGTERM, printing live
 * counts. With `--metrics-port` it serves Prometheus metrics (projection lag, events behind, dead letters) on /metrics,
 * on 127.0.0.1 unless `--metrics-host` names another address (docs/security.md).
 */
export async function projectorCommand(options: ProjectorOptions = {}, hooks: ProcessHooks = {}): Promise<void> {
  const batchSize = options.batchSize === undefined ? undefined : parseWholeNumber(options.batchSize, '--batch-size', 1, 100_000)
  const metricsPort = options.metricsPort === undefined ? undefined : parseWholeNumber(options.metricsPort, '--metrics-port', 0, 65_535)
  const metricsHost = options.metricsHost ?? DEFAULT_METRICS_HOST
  const config = loadConfig()
  const storage = await openStorage(config)
  const projections = defaultProjections()
  const registry = new Registry()
  const metrics = registerProjectionMetrics(registry, () =>
    projectionLag(
      storage.database.pool,
      storage.store,
      projections.map((projection) => projection.name),
    ),
  )
  const applied = new Map<string, { position: bigint; events: number; deadLettered: number; lagMs: number }>()
  let lastPrint = 0
  const runner = new ProjectionRunner({
    store: storage.store,
    pool: storage.database.pool,
    projections,
    batchSize,
    onProgress: (progress) => {
      metrics.observe(progress)
      const total = applied.get(progress.projection) ?? { position: 0n, events: 0, deadLettered: 0, lagMs: 0 }
      applied.set(progress.projection, {
        position: progress.position,
        events: total.events + progress.applied,
        deadLettered: total.deadLettered + progress.deadLettered,
        lagMs: progress.lagMs,
      })
      if (Date.now() - lastPrint < 1_000) return
      lastPrint = Date.now()
      const line = [...applied].map(
        ([name, at]) => `${name}@${at.position} (+${at.events}${at.deadLettered ? `, ${at.deadLettered} dead-lettered` : ''}, lag ${Math.round(at.lagMs)} ms)`,
      )
      console.error(`projector ${process.pid}: ${line.join('  ')}`)
    },
  })
  const server = metricsPort === undefined ? undefined : await serveMetrics(registry, metricsHost, metricsPort)
  const stop = () => void runner.stop()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  hooks.onRunning?.(stop)
  console.error(`projector ${process.pid} following the ${storage.store.kind} event log`)
  try {
    await runner.start()
  } finally {
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
    await storage.close()
  }
}

/** Metrics listen on loopback unless the operator says otherwise: lag and dead-letter counts are not for everyone. */
export const DEFAULT_METRICS_HOST = '127.0.0.1'

/** Serves `registry` on GET /metrics (Prometheus text format); anything else is 404. */
async function serveMetrics(registry: Registry, host: string, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are on GET /metrics\n')
      return
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${error instanceof Error ? error.message : String(error)}\n`),
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  const address = server.address()
  const listening = typeof address === 'object' && address ? address : { address: host, port }
  const shown = listening.address.includes(':') ? `[${listening.address}]` : listening.address
  console.error(`projector ${process.pid}: metrics on http://${shown}:${listening.port}/metrics`)
  return server
}
