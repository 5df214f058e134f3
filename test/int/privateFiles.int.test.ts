import { mkdtempSync, readdirSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { openDatabase } from '../../historian/adapters/postgres/database'
import { demoIntegrityKey } from '../../dev/demo/demoIntegrityKey'
import { demoSigningKeys } from '../../dev/demo/demoSigningKeys'
import { demoKek } from '../../dev/demo/demoKek'
import { loadConfig } from '../../cli/runtime/config'

const modeOf = (file: string): number => statSync(file).mode & 0o777

/** Every directory and file under `dir`, with its permission bits. */
function modesUnder(dir: string): { path: string; directory: boolean; mode: number }[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isDirectory() || entry.isFile())
    .map((entry) => {
      const file = path.join(entry.parentPath, entry.name)
      return { path: file, directory: entry.isDirectory(), mode: modeOf(file) }
    })
}

/** docs/security.md: what Annalist creates on disk is readable by its own user only. */
describe('private data directories', () => {
  it('creates the PGlite data directory and its parents 0700, and its files 0600', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'annalist-private-'))
    const dataDir = path.join(root, 'annalist', 'pgdata')
    const database = await openDatabase({ pgliteDataDir: dataDir })
    await database.close()
    expect(modeOf(path.join(root, 'annalist'))).toBe(0o700)
    expect(modeOf(dataDir)).toBe(0o700)
    const entries = modesUnder(dataDir)
    expect(entries.length).toBeGreaterThan(10)
    for (const entry of entries) expect(entry.mode, entry.path).toBe(entry.directory ? 0o700 : 0o600)
  })

  it('leaves a data directory the operator made as it was', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'annalist-own-'))
    const before = modeOf(dataDir)
    const database = await openDatabase({ pgliteDataDir: dataDir })
    await database.close()
    expect(modeOf(dataDir)).toBe(before)
  })

  it("creates the demo's data directory 0700 and its integrity key file 0600", () => {
    const dataDir = path.join(mkdtempSync(path.join(tmpdir(), 'annalist-demo-')), 'data')
    const key = demoIntegrityKey(dataDir)
    expect(modeOf(dataDir)).toBe(0o700)
    expect(modeOf(key.path)).toBe(0o600)
  })

  it("creates the demo's signing key directory 0700 with 0600 files once, and reuses it", async () => {
    const dataDir = path.join(mkdtempSync(path.join(tmpdir(), 'annalist-demo-')), 'data')
    const first = await demoSigningKeys(dataDir)
    expect(first.created).toBe(true)
    expect(modeOf(dataDir)).toBe(0o700)
    const entries = modesUnder(dataDir)
    expect(entries.map((entry) => path.relative(dataDir, entry.path)).sort()).toEqual(
      ['signing-keys', 'signing-keys/state.json', `signing-keys/${(await first.store.currentSigner()).kid}.pem`].sort(),
    )
    for (const entry of entries) expect(entry.mode, entry.path).toBe(entry.directory ? 0o700 : 0o600)
    const again = await demoSigningKeys(dataDir)
    expect(again.created).toBe(false)
    expect(await again.store.publicKeys()).toEqual(await first.store.publicKeys())
  })

  it("creates the demo's key-encryption key once, 0600 in its 0700 data directory, which ANNALIST_KEK_FILE accepts", () => {
    const dataDir = path.join(mkdtempSync(path.join(tmpdir(), 'annalist-demo-')), 'data')
    const kek = demoKek(dataDir)
    expect(kek).toMatchObject({ path: path.join(dataDir, 'kek.key'), created: true })
    expect(modeOf(dataDir)).toBe(0o700)
    expect(modeOf(kek.path)).toBe(0o600)
    expect(kek.key.versions).toEqual([1])
    const again = demoKek(dataDir)
    expect(again.created).toBe(false)
    expect(again.key.key(1)!.equals(kek.key.key(1)!)).toBe(true)
    expect(loadConfig({ ANNALIST_KEK_FILE: kek.path }).kek!.key(1)!.equals(kek.key.key(1)!)).toBe(true)
  })
})
