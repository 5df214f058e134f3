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

  it('builds the stream, folds it with and without snapshots to the same state, and reports the ratio', async () => {
    const lines: string[] = []
    const figures = await measureSnapshotFold({ database, eventCount: 3_000, snapshotEvery: 50, rounds: 2, onProgress: (line) => lines.push(line) })
    expect(figures).toMatchObject({ streamEvents: 3_000, snapshotEvery: 50, eventsFoldedWithSnapshot: 50, snapshotsStored: 59, rounds: 2, store: 'pglite' })
    // Folding 50 events instead of 3,000: far cheaper, though a small stream keeps the fixed costs visible.
    expect(figures.snapshotFoldRatio).toBeGreaterThan(0)
    expect(figures.snapshotFoldRatio).toBeLessThan(0.5)
    expect(figures.snapshotFoldRatio).toBeCloseTo(figures.foldMsWithSnapshots / figures.foldMsWithoutSnapshots, 10)
    expect(lines.filter((line) => /round \d\/2 (with|without)/.test(line))).toHaveLength(4)
    const { rows } = await database.pool.query<{ count: string }>('select count(*) from events')
    expect(Number(rows[0]!.count)).toBe(3_000)
  })
})
