import { buildApiServer } from '../../api/server'
import { loadConfig, requireIntegrityKeyRing } from '../runtime/config'
import { openStorage } from '../runtime/storage'

function parsePort(value: string): number {
  const port = /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isInteger(port) || port > 65_535) throw new RangeError(`--port must be a whole number from 0 to 65535, got ${JSON.stringify(value)}`)
  return port
}

/** `annalist serve`: the tenant-scoped HTTP query API until SIGINT/SIGTERM (docs/api.md). */
export async function serveCommand(options: { port: string; host: string }): Promise<void> {
  const port = parsePort(options.port)
  const config = loadConfig()
  const keyRing = requireIntegrityKeyRing(config)
  const storage = await openStorage(config)
  const app = buildApiServer({ pool: storage.database.pool, store: storage.store, keyRing })
  let url: string
  try {
    url = await app.listen({ port, host: options.host })
  } catch (error) {
    await app.close().catch(() => undefined)
    await storage.close()
    throw error
  }
  console.log(`annalist API listening on ${url}  (OpenAPI document: ${url}/openapi.json; ${storage.store.kind} event log)`)
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  console.error('annalist API stopping')
  try {
    await app.close()
  } finally {
    await storage.close()
  }
}
