import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { DataDirectoryLockedError, openDatabase } from '../../historian/adapters/postgres/database'
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../dev/embeddedPostgres/embeddedServer'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { freshPgliteDatabase, postgresStoreOn } from '../support/databases'
import { eventStoreContract, freshStream, newEvents } from '../support/eventStoreContract'

eventStoreContract('PGlite (embedded, in memory)', async () => postgresStoreOn(await freshPgliteDatabase()))

describe('PGlite data directory', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'annalist-pglite-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('keeps events across close and reopen, and refuses a second opener while one holds the directory', async () => {
    const dataDir = path.join(dir, 'reopen')
    const first = await openDatabase({ pgliteDataDir: dataDir })
    const stream = freshStream()
    const batch = newEvents(2)
    try {
      await new PostgresEventStore(first).appendToStream(stream, batch, { expectedRevision: 'no_stream' })
      const second = await openDatabase({ pgliteDataDir: dataDir }).catch((error: unknown) => error)
      expect(second).toBeInstanceOf(DataDirectoryLockedError)
      expect(second).toMatchObject({ dataDir: path.resolve(dataDir), ownerPid: process.pid })
      expect((second as Error).message).toContain(`${path.resolve(dataDir)} is in use by process ${process.pid}`)
      expect((second as Error).message).not.toContain('\n')
    } finally {
      await first.close()
    }
    const reopened = await openDatabase({ pgliteDataDir: dataDir })
    try {
      expect((await new PostgresEventStore(reopened).readStream(stream)).map((event) => event.eventId)).toEqual(batch.map((e) => e.eventId))
    } finally {
      await reopened.close()
    }
  })

  it('names another live process that holds the directory, and takes the lock over once that process is gone', async () => {
    const dataDir = path.join(dir, 'other-process')
    const holder: ChildProcess = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    const holderPid = holder.pid!
    const exited = new Promise((resolve) => holder.once('exit', resolve))
    try {
      await mkdir(dataDir, { recursive: true })
      await writeFile(path.join(dataDir, 'annalist.lock'), `${holderPid}\n`)
      const refused = await openDatabase({ pgliteDataDir: dataDir }).catch((error: unknown) => error)
      expect(refused).toBeInstanceOf(DataDirectoryLockedError)
      expect((refused as Error).message).toContain(`in use by process ${holderPid}`)
    } finally {
      holder.kill('SIGKILL')
      await exited
    }
    const recovered = await openDatabase({ pgliteDataDir: dataDir })
    try {
      expect(await new PostgresEventStore(recovered).readAll()).toEqual([])
    } finally {
      await recovered.close()
    }
  })
})

describe('embedded PostgreSQL server (PGlite over the wire protocol)', () => {
  let dir: string
  let server: EmbeddedPostgres
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'annalist-embedded-'))
    server = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pgdata') })
  })
  afterAll(async () => {
    await server?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('serves a postgres:// URL for a Unix socket and refuses a second server on the same directory', async () => {
    expect(server.url).toMatch(/^postgres:\/\/postgres@\/postgres\?host=\/\S+&port=5432$/)
    await expect(startEmbeddedPostgres({ dataDir: path.join(dir, 'pgdata') })).rejects.toBeInstanceOf(DataDirectoryLockedError)
  })

  it('lets two pools append and read concurrently, with one global order', async () => {
    const [a, b] = await Promise.all([openDatabase({ url: server.url }), openDatabase({ url: server.url })])
    try {
      expect(a.notifiesAcrossConnections).toBe(false)
      const [storeA, storeB] = [new PostgresEventStore(a), new PostgresEventStore(b)]
      expect(storeA.notifiesOnAppend).toBe(false)
      const streams = Array.from({ length: 6 }, () => freshStream())
      const results = await Promise.all(
        streams.map((stream, index) => (index % 2 === 0 ? storeA : storeB).appendToStream(stream, newEvents(3), { expectedRevision: 'no_stream' })),
      )
      expect(results.every((result) => result.written && result.nextExpectedRevision === 2n)).toBe(true)

      const fromA = await storeA.readAll()
      const fromB = await storeB.readAll()
      expect(fromB).toEqual(fromA)
      const ours = fromA.filter((event) => streams.includes(event.streamName))
      expect(ours).toHaveLength(18)
      expect(new Set(ours.map((event) => event.position)).size).toBe(18)
      for (const stream of streams) {
        expect((await storeB.readStream(stream)).map((event) => event.revision)).toEqual([0n, 1n, 2n])
      }
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })

  it('leaves nothing behind when a client is destroyed in the middle of an append transaction', async () => {
    const database = await openDatabase({ url: server.url })
    const store = new PostgresEventStore(database)
    const doomed = new pg.Client({ connectionString: server.url })
    doomed.on('error', () => undefined)
    try {
      await doomed.connect()
      const stream = freshStream()
      await doomed.query('begin')
      const outcome = await store.appendInTransaction(doomed, stream, newEvents(2), 'no_stream')
      expect(outcome.status).toBe('written')
      doomed.connection.stream.destroy()

      // Once the server has rolled the transaction back, the stream is still new: an append at no_stream succeeds.
      const replacement = newEvents(1)
      await vi.waitFor(async () => {
        const result = await store.appendToStream(stream, replacement, { expectedRevision: 'no_stream' })
        expect(result.written).toBe(true)
      }, { timeout: 20_000, interval: 50 })
      expect((await store.readStream(stream)).map((event) => event.eventId)).toEqual(replacement.map((event) => event.eventId))
    } finally {
      await doomed.end().catch(() => undefined)
      await store.close()
      await database.close()
    }
  })
})
