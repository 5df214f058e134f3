import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../api/keys'
import { buildApiServer } from '../../api/server'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import type { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import type { EventStore, ReadAllOptions } from '../../historian/port'
import { verifyExport, type ExportRecord } from '../../projections/export/tenantExport'
import { auditPath, EXPORTED_TENANT, httpGet, httpGetText, QUERIED_TENANT, seedExportLoad } from '../../bench/apiIsolationUnderLoad'
import { DATABASE_BACKENDS, randomKeyRing } from '../support/databases'

/** Tasks of the exported tenant: about 10 KB each, so one export is about 7 MB, more than the connection buffers hold. */
const TASKS = 700

/** An export request whose first chunk was read, then paused: the server cannot finish it while the client reads nothing. */
interface PausedExport {
  readonly first: string
  readonly ended: () => boolean
  readonly complete: () => boolean
  /** Reads the rest to its end. */
  rest(): Promise<string>
  destroy(): void
}

async function openPausedExport(baseUrl: string, key: string): Promise<PausedExport> {
  const { request, response } = await httpGet(baseUrl, `/v2/tenants/${EXPORTED_TENANT}/export`, key)
  expect(response.statusCode).toBe(200)
  response.setEncoding('utf8')
  let ended = false
  response.on('end', () => (ended = true))
  const first = await new Promise<string>((resolve) =>
    response.once('data', (chunk: string) => {
      response.pause()
      resolve(chunk)
    }),
  )
  return {
    first,
    ended: () => ended,
    complete: () => response.complete,
    async rest() {
      let text = ''
      for await (const chunk of response) text += chunk as string
      return text
    },
    destroy: () => request.destroy(),
  }
}

describe.each(DATABASE_BACKENDS)('streamed exports on a listening API server on $backend', ({ open }) => {
  let database: Database
  let store: PostgresEventStore
  let keyRing: TenantKeyRing
  let app: FastifyInstance
  let baseUrl: string
  const exportReads = { count: 0 }
  const keys = {} as Record<'exporter' | 'reader', { key: string }> & { exporters: { key: string }[] }

  beforeAll(async () => {
    database = await open()
    store = new PostgresEventStore(database)
    keyRing = randomKeyRing()
    await seedExportLoad({ database, store, keyRing, tasks: TASKS })
    // Three tenant keys of the exported tenant, one export each (a key may have two expensive requests in flight, the
    // tenant four: api/rateLimits.ts), and a tenant key of the other tenant for its audit query (/v2).
    keys.exporters = await Promise.all([1, 2, 3].map(() => createApiKey(database.pool, { role: 'tenant', tenantId: EXPORTED_TENANT })))
    keys.exporter = keys.exporters[0]!
    keys.reader = await createApiKey(database.pool, { role: 'tenant', tenantId: QUERIED_TENANT })
    // The server's store, with its reads of the exported tenant's log counted.
    const counted: EventStore = Object.assign(Object.create(store) as EventStore, {
      readTenantLog(tenantId: string, options?: ReadAllOptions) {
        if (tenantId === EXPORTED_TENANT) exportReads.count++
        return store.readTenantLog(tenantId, options)
      },
    })
    app = buildApiServer({ pool: database.pool, store: counted, keyRing })
    await app.listen({ port: 0, host: '127.0.0.1' })
    baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  })

  afterAll(async () => {
    await app?.close()
    await store?.close()
    await database?.close()
  })

  it("answers /healthz and another tenant's audit query while three exports are open and unfinished; a resumed one verifies, destroyed ones stop reading", async () => {
    const exports: PausedExport[] = []
    for (const exporter of keys.exporters) exports.push(await openPausedExport(baseUrl, exporter.key))
    for (const paused of exports) {
      expect(paused.first.startsWith('{"format":"annalist-export","formatVersion":2,"part":"header"')).toBe(true)
      expect(paused.ended()).toBe(false)
    }

    const health = await httpGetText(baseUrl, '/healthz', keys.reader.key)
    expect(health.status).toBe(200)
    const audit = await httpGetText(baseUrl, auditPath(QUERIED_TENANT), keys.reader.key)
    expect(audit.status).toBe(200)
    const { entries } = JSON.parse(audit.body) as { entries: { tenantId: string }[] }
    expect(entries.length).toBeGreaterThan(0)
    expect(entries.every((entry) => entry.tenantId === QUERIED_TENANT)).toBe(true)
    // Still open and unfinished: the server could not send them whole while their clients read nothing.
    for (const paused of exports) {
      expect(paused.ended()).toBe(false)
      expect(paused.complete()).toBe(false)
    }

    // One read to its end: the whole tenant, numbered 1..n, verifies.
    const [resumed, ...abandoned] = exports
    const text = resumed!.first + (await resumed!.rest())
    const verified = verifyExport(text, 'jsonl', keyRing)
    expect(verified).toMatchObject({ formatVersion: 2, ok: true, tenantId: EXPORTED_TENANT, records: TASKS * 3, streams: TASKS })
    const records = text.trimEnd().split('\n').slice(1, -1).map((line) => JSON.parse(line) as ExportRecord)
    expect(records.map((record) => record.sequence)).toEqual(Array.from({ length: TASKS * 3 }, (_, index) => String(index + 1)))
    expect(records.map((record) => record.eventId)).toEqual((await store.readTenantLog(EXPORTED_TENANT, { maxCount: TASKS * 3 })).map((event) => event.eventId))

    // The other two are dropped by their clients: the server stops reading for them, and a new export is not held up.
    for (const paused of abandoned) paused.destroy()
    const again = await httpGetText(baseUrl, `/v2/tenants/${EXPORTED_TENANT}/export`, keys.exporter.key)
    expect(verifyExport(again.body, 'jsonl', keyRing)).toMatchObject({ ok: true, records: TASKS * 3 })
    const readsAfter = exportReads.count
    for (let i = 0; i < 5; i++) expect((await httpGetText(baseUrl, auditPath(QUERIED_TENANT), keys.reader.key)).status).toBe(200)
    expect(exportReads.count).toBe(readsAfter)
  }, 180_000)

  it('aborts the response when the store fails part way, and what arrived is refused as truncated', async () => {
    let reads = 0
    const failing: EventStore = Object.assign(Object.create(store) as EventStore, {
      readTenantLog(tenantId: string, options?: ReadAllOptions) {
        if (tenantId === EXPORTED_TENANT && ++reads === 5) return Promise.reject(new Error('the store went away'))
        return store.readTenantLog(tenantId, options)
      },
    })
    const broken = buildApiServer({ pool: database.pool, store: failing, keyRing, onError: () => undefined })
    try {
      await broken.listen({ port: 0, host: '127.0.0.1' })
      const url = `http://127.0.0.1:${(broken.server.address() as AddressInfo).port}`
      const { response } = await httpGet(url, `/v2/tenants/${EXPORTED_TENANT}/export`, keys.exporter.key)
      expect(response.statusCode).toBe(200)
      response.setEncoding('utf8')
      let text = ''
      const outcome = await new Promise<string>((resolve) => {
        response.on('data', (chunk: string) => (text += chunk))
        response.on('end', () => resolve('end'))
        response.on('error', () => resolve('error'))
        response.on('aborted', () => resolve('aborted'))
      })
      expect(outcome).not.toBe('end')
      expect(response.complete).toBe(false)
      expect(text.length).toBeGreaterThan(0)
      expect(() => verifyExport(text.slice(0, text.lastIndexOf('\n') + 1), 'jsonl', keyRing)).toThrow(/truncated export: no manifest line/)
    } finally {
      await broken.close()
    }
  })
})
