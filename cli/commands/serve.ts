import { Client, Connection } from '@temporalio/client'
import type { CancelTask, RedriveTask } from '../../api/apiDeps'
import { forgetClientAddresses } from '../../api/accessLog'
import { buildApiServer } from '../../api/server'
import type pg from 'pg'
import type { Historian } from '../../historian/historian'
import type { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { redactError } from '../../historian/redact'
import { apiServerConfigFromEnv } from '../runtime/apiServerConfig'
import { loadConfig, requireIntegrityKeyRing, type AnnalistConfig } from '../runtime/config'
import { apiCancelTask } from '../runtime/cancelRequest'
import { apiRedriveTask } from '../runtime/redriveRequest'
import { signingKeyStoreFromEnv } from '../runtime/signingKeyConfig'
import { openStorage } from '../runtime/storage'

function parsePort(value: string): number {
  const port = /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isInteger(port) || port > 65_535) throw new RangeError(`--port must be a whole number from 0 to 65535, got ${JSON.stringify(value)}`)
  return port
}

/** The API's redrive and cancel on the cluster at TEMPORAL_ADDRESS, connected on first use. */
function temporalOperations(
  config: AnnalistConfig & { temporalAddress: string },
  historian: Historian,
  keyRing: TenantKeyRing,
): { redrive: RedriveTask; cancel: CancelTask; close(): Promise<void> } {
  const connection = Connection.lazy({ address: config.temporalAddress })
  const client = new Client({ connection, namespace: config.temporalNamespace })
  return { redrive: apiRedriveTask({ client, historian, keyRing, taskQueue: config.taskQueue }), cancel: apiCancelTask(client), close: () => connection.close() }
}

const HOUR_MS = 60 * 60 * 1_000

/**
 * Removes client addresses older than the retention from the access log now and then every hour, until the returned
 * stop function is called. A failure is reported and tried again the next hour.
 */
function forgetOldAddressesHourly(pool: pg.Pool, retentionDays: number): () => void {
  const forget = () =>
    forgetClientAddresses(pool, retentionDays).catch((error: unknown) =>
      console.error(`annalist API: could not remove client addresses older than ${retentionDays} days: ${redactError(error)}`),
    )
  void forget()
  const timer = setInterval(() => void forget(), HOUR_MS)
  timer.unref()
  return () => clearInterval(timer)
}

/** `annalist serve`: the tenant-scoped HTTP query API until SIGINT/SIGTERM (docs/api.md). */
export async function serveCommand(options: { port: string; host: string }): Promise<void> {
  const port = parsePort(options.port)
  const config = loadConfig()
  const apiConfig = apiServerConfigFromEnv()
  const keyRing = requireIntegrityKeyRing(config)
  const signingKeys = await signingKeyStoreFromEnv()
  const storage = await openStorage(config)
  const temporal = config.temporalAddress ? temporalOperations({ ...config, temporalAddress: config.temporalAddress }, storage.historian, keyRing) : undefined
  let url: string
  let app: ReturnType<typeof buildApiServer> | undefined
  try {
    app = buildApiServer({
      pool: storage.database.pool,
      store: storage.store,
      keyRing,
      redriveTask: temporal?.redrive,
      cancelTask: temporal?.cancel,
      signingKeys,
      timeouts: apiConfig.timeouts,
      limits: apiConfig.limits,
      trustedProxies: apiConfig.trustedProxies,
      refusalsLoggedPerMinute: apiConfig.refusalsLoggedPerMinute,
    })
    url = await app.listen({ port, host: options.host })
  } catch (error) {
    await app?.close().catch(() => undefined)
    await temporal?.close()
    await storage.close()
    throw error
  }
  const stopForgetting = forgetOldAddressesHourly(storage.database.pool, apiConfig.addressRetentionDays)
  console.log(`annalist API listening on ${url}  (OpenAPI document: ${url}/openapi.json; ${storage.store.kind} event log)`)
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  console.error('annalist API stopping')
  stopForgetting()
  try {
    await app.close()
    await temporal?.close()
  } finally {
    await storage.close()
  }
}
