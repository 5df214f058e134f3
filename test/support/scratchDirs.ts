import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'

/** Makes a new temporary directory `<tmp>/<prefix>XXXXXX` on each call; every one is removed after the file's tests. */
export function scratchDirs(prefix: string): () => Promise<string> {
  const made: string[] = []
  afterAll(async () => {
    await Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true })))
  })
  return async () => {
    const dir = await mkdtemp(join(tmpdir(), prefix))
    made.push(dir)
    return dir
  }
}
