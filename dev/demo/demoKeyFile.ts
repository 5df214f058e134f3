import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'

/** One of the demo's own key files: where it is kept, whether this run created it, and what was read from it. */
export interface DemoKeyFile<T> {
  readonly path: string
  readonly created: boolean
  readonly key: T
}

/**
 * A key the demo keeps when none is configured: `<dataDir>/<fileName>`, created once with `generate()` (mode 0600,
 * never overwritten; a data directory it creates is 0700) and read back with `parse` by later runs. `what` names the
 * key in the error a damaged file gives.
 */
export function demoKeyFile<T>(dataDir: string, fileName: string, what: string, generate: () => string, parse: (text: string) => T): DemoKeyFile<T> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const keyPath = path.join(dataDir, fileName)
  let created = false
  try {
    writeFileSync(keyPath, `${generate()}\n`, { flag: 'wx', mode: 0o600 })
    created = true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
  try {
    return { path: keyPath, created, key: parse(readFileSync(keyPath, 'utf8')) }
  } catch (error) {
    throw new Error(`the demo's ${what} file ${keyPath} ${(error as Error).message}; fix or delete it`, { cause: error })
  }
}
