import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../dev/embeddedPostgres/embeddedServer'

/**
 * Several processes share the embedded PGlite through the socket server. Parameterized queries use the extended protocol
 * (Parse, Bind, Execute, Sync); the server must never interleave two connections' messages inside one exchange.
 */
describe('embedded PGlite served to many connections', () => {
  let embedded: EmbeddedPostgres
  const pools: pg.Pool[] = []

  beforeAll(async () => {
    embedded = await startEmbeddedPostgres({ dataDir: path.join(mkdtempSync(path.join(tmpdir(), 'annalist-embedded-')), 'pgdata') })
  })
  afterAll(async () => {
    await Promise.all(pools.map((pool) => pool.end()))
    await embedded?.close()
  })

  it('answers concurrent parameterized queries from many connections, each with its own parameters', async () => {
    for (let i = 0; i < 4; i++) pools.push(new pg.Pool({ connectionString: embedded.url, max: 4 }))
    const queries = Array.from({ length: 400 }, (_, i) =>
      pools[i % pools.length]!.query<{ a: number; b: string; c: number }>('select $1::int as a, $2::text as b, $3::int * 2 as c', [i, `v${i}`, i]),
    )
    const results = await Promise.all(queries)
    results.forEach((result, i) => expect(result.rows[0]).toEqual({ a: i, b: `v${i}`, c: i * 2 }))
  })

  it('keeps a transaction exclusive to its connection while others query', async () => {
    const [a, b] = pools
    const client = await a!.connect()
    try {
      await client.query('create table if not exists session_probe (n int)')
      await client.query('begin')
      await client.query('insert into session_probe values ($1)', [1])
      const outside = b!.query<{ n: string }>('select count(*)::text as n from session_probe where n = $1', [1])
      await client.query('insert into session_probe values ($1)', [1])
      await client.query('commit')
      expect((await outside).rows[0]!.n).toBe('2')
    } finally {
      client.release()
    }
  })
})
