import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { measureSnapshotFold } from '../../bench/snapshotFold'
import type { Database } from '../../historian/adapters/postgres/database'
import { freshPgliteDatabase } from '../support/databases'

describe('snapshotFoldRatio benchmark', () => {
  let database: Database
  beforeAll(async () => {
    database = await freshPgliteDatabase()
  })
  afterAll(async () => {
    await database?.close()
  })

  it('refuses sizes it cannot measure, before writing anything', async () => {
    await expect(measureSnapshotFold({ database, eventCount: 100, snapshotEvery: 100 })).rejects.toThrow(/snapshotEvery must be a whole number from 1 to eventCount - 1/)
    await expect(measureSnapshotFold({ database, eventCount: 1 })).rejects.toThrow(/eventCount must be/)
    await expect(measureSnapshotFold({ database, eventCount: 100, rounds: 0 })).rejects.toThrow(/rounds must be/)
    const { rows } = await database.pool.query<{ count: string }>('select count(*) from events')
    expect(Number(rows[0]!.count)).toBe(0)
  })

  // How much faster the snapshot fold is, is the benchmark's figure (`npm run bench -- --only snapshotFold`), not a test's.
  it('builds the stream and folds it with and without snapshots, in interleaved rounds, to the same state', async () => {
    const lines: string[] = []
    const figures = await measureSnapshotFold({ database, eventCount: 3_000, snapshotEvery: 50, rounds: 2, onProgress: (line) => lines.push(line) })
    expect(figures).toMatchObject({ streamEvents: 3_000, snapshotEvery: 50, eventsFoldedWithSnapshot: 50, snapshotsStored: 59, rounds: 2, store: 'pglite' })
    expect(lines.filter((line) => /round \d\/2 (with|without)/.test(line))).toHaveLength(4)
    const { rows } = await database.pool.query<{ count: string }>('select count(*) from events')
    expect(Number(rows[0]!.count)).toBe(3_000)
  })
})
