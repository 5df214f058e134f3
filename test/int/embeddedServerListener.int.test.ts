import { chmod, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { parse } from 'pg-connection-string'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../dev/embeddedPostgres/embeddedServer'

/** Ports this process listens on over TCP (IPv4 and IPv6), from /proc: state 0A is LISTEN. */
async function tcpListeningPortsOf(pid: number): Promise<Set<number>> {
  const inodes = new Set<string>()
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')
    const match = /^socket:\[(\d+)\]$/.exec(target)
    if (match) inodes.add(match[1]!)
  }
  const ports = new Set<number>()
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const lines = (await readFile(table, 'utf8').catch(() => '')).split('\n').slice(1)
    for (const line of lines) {
      const fields = line.trim().split(/\s+/)
      if (fields[3] === '0A' && inodes.has(fields[9]!)) ports.add(Number.parseInt(fields[1]!.split(':')[1]!, 16))
    }
  }
  return ports
}

/** PGlite accepts any login, so the embedded server must be reachable by this user only: a Unix socket in a 0700 directory. */
describe('embedded PGlite server listener', () => {
  let dir: string
  let embedded: EmbeddedPostgres | undefined
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'annalist listener & co-')) // a space and an ampersand: the URL must encode them
  })
  afterAll(async () => {
    await embedded?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('listens on an owner-only Unix socket, opens no TCP port, and serves pg clients through its URL', async () => {
    const before = await tcpListeningPortsOf(process.pid)
    embedded = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pgdata') })
    const parsed = parse(embedded.url)
    expect(parsed.host).toBe(path.dirname(embedded.socketPath))
    expect(path.basename(embedded.socketPath)).toBe('.s.PGSQL.5432')
    expect(new URL(embedded.url.replace('@/', '@h/')).port).toBe('')
    const socket = await stat(embedded.socketPath)
    expect(socket.isSocket()).toBe(true)
    expect(socket.mode & 0o077).toBe(0)
    expect((await stat(path.dirname(embedded.socketPath))).mode & 0o777).toBe(0o700)
    expect(await tcpListeningPortsOf(process.pid)).toEqual(before)

    const pool = new pg.Pool({ connectionString: embedded.url, max: 2 })
    try {
      const { rows } = await pool.query<{ answer: number }>('select 6 * 7 as answer')
      expect(rows).toEqual([{ answer: 42 }])
    } finally {
      await pool.end()
    }
  })

  it('puts the socket in a fresh private temp directory when the data directory path is too long, and removes it on close', async () => {
    const deep = path.join(dir, 'd'.repeat(60), 'e'.repeat(60), 'pgdata')
    const served = await startEmbeddedPostgres({ dataDir: deep })
    const socketDir = path.dirname(served.socketPath)
    try {
      expect(socketDir.startsWith(tmpdir())).toBe(true)
      expect((await stat(socketDir)).mode & 0o777).toBe(0o700)
      const client = new pg.Client({ connectionString: served.url })
      await client.connect()
      try {
        expect((await client.query<{ one: number }>('select 1 as one')).rows).toEqual([{ one: 1 }])
      } finally {
        await client.end()
      }
    } finally {
      await served.close()
    }
    await expect(stat(socketDir)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('refuses a given socket directory that other users may enter', async () => {
    const open = path.join(dir, 'open')
    await mkdir(open, { mode: 0o755 })
    await chmod(open, 0o755)
    await expect(startEmbeddedPostgres({ dataDir: path.join(dir, 'pgdata-open'), socketDir: open })).rejects.toThrow(/must be owned by this user and private/)
  })
})
