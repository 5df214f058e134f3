import { chmod, readdir, stat } from 'node:fs/promises'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../api/keys'
import { signEvidence, verifyEvidence } from '../../historian/evidence/evidence'
import { FileSigningKeyStore } from '../../historian/evidence/fileSigningKeyStore'
import { signingKeyId, type SigningKeySet } from '../../historian/evidence/signingKeys'
import { generateIntegrityKey } from '../../historian/integrity/tenantKeyRing'
import { freshPostgresDatabase } from '../support/databases'
import { operatorKeyEnv } from '../support/operatorKey'
import { runAnnalist, type CliRun } from '../support/runCli'
import { startServe } from '../support/serveProcess'
import { scratchDirs } from '../support/scratchDirs'

const HINT = '  (run with --verbose for details)'
const newDir = scratchDirs('annalist-signing-cli-')

/** `annalist keys signing init|rotate` and `annalist keys public`, through the built CLI (docs/evidence.md). */
describe('signing keys in the CLI', () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>
  let operator: string
  let directory: string

  const run = (args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> =>
    runAnnalist(args, { DATABASE_URL: database.url, ANNALIST_SIGNING_KEY_DIR: directory, ...env })
  /** The one line a refused command prints, after checking it exited 1 and printed nothing else. */
  const refusal = (result: CliRun) => {
    expect(result.code, result.stderr).toBe(1)
    expect(result.stdout).toBe('')
    const lines = result.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    return lines[0]!
  }
  const publicKeys = async (): Promise<SigningKeySet> => {
    const result = await run(['keys', 'public'])
    expect(result.code, result.stderr).toBe(0)
    return JSON.parse(result.stdout) as SigningKeySet
  }
  const listing = async () => (await readdir(directory)).sort()

  beforeAll(async () => {
    database = await freshPostgresDatabase()
    operator = (await operatorKeyEnv(database.pool)).ANNALIST_API_KEY
    directory = path.join(await newDir(), 'signing')
  })
  afterAll(async () => {
    await database?.close()
  })

  it('refuses init without ANNALIST_API_KEY or with a key lacking signingKeys.manage, writing nothing', async () => {
    expect(refusal(await run(['keys', 'signing', 'init']))).toBe(
      `annalist: ANNALIST_API_KEY: not set; this command needs an API key with the permission signingKeys.manage (docs/roles.md)${HINT}`,
    )
    const scoped = await createApiKey(database.pool, { role: 'operator', tenantId: 'acme' })
    expect(refusal(await run(['keys', 'signing', 'init'], { ANNALIST_API_KEY: scoped.key }))).toBe(
      `annalist: API key ${scoped.id} (operator of tenant acme) may not signingKeys.manage${HINT}`,
    )
    await expect(stat(directory)).rejects.toMatchObject({ code: 'ENOENT' })
    expect(refusal(await run(['keys', 'signing', 'init'], { ANNALIST_API_KEY: operator, ANNALIST_SIGNING_KEY_DIR: '' }))).toMatch(
      /^annalist: ANNALIST_SIGNING_KEY_DIR: not set; name the private directory \(0700\)/,
    )
    expect(refusal(await run(['keys', 'public']))).toBe(
      `annalist: ANNALIST_SIGNING_KEY_DIR: ${directory} is missing: create it and a first key with \`annalist keys signing init\`${HINT}`,
    )
  })

  it('init creates the directory and a first key; keys public prints it as a valid JWK Set', async () => {
    const init = await run(['keys', 'signing', 'init'], { ANNALIST_API_KEY: operator })
    expect(init.code, init.stderr).toBe(0)
    const kid = /^signing key ([0-9a-f]{64}) created and current/.exec(init.stdout)?.[1]
    expect(kid).toBeDefined()
    expect((await stat(directory)).mode & 0o777).toBe(0o700)

    const { keys } = await publicKeys()
    expect(keys).toEqual([{ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', kid, x: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), status: 'current', createdAt: expect.any(String) }])
    expect(signingKeyId(keys[0]!.x)).toBe(kid)
    expect(refusal(await run(['keys', 'signing', 'init'], { ANNALIST_API_KEY: operator }))).toMatch(/already holds signing keys/)
  })

  it('refuses rotate without ANNALIST_API_KEY, changing nothing; rotates with it, and what the old key signed still verifies', async () => {
    const before = await publicKeys()
    const files = await listing()
    const signed = await signEvidence(await FileSigningKeyStore.open(directory), 'erasure-certificate.v1', { tenantId: 'acme' })

    expect(refusal(await run(['keys', 'signing', 'rotate']))).toBe(
      `annalist: ANNALIST_API_KEY: not set; this command needs an API key with the permission signingKeys.manage (docs/roles.md)${HINT}`,
    )
    expect(await publicKeys()).toEqual(before)
    expect(await listing()).toEqual(files)

    const rotate = await run(['keys', 'signing', 'rotate'], { ANNALIST_API_KEY: operator })
    expect(rotate.code, rotate.stderr).toBe(0)
    const after = await publicKeys()
    expect(after.keys.map((key) => [key.kid, key.status])).toEqual([
      [before.keys[0]!.kid, 'retired'],
      [/^signing key ([0-9a-f]{64})/.exec(rotate.stdout)![1], 'current'],
    ])
    expect(after.keys[0]!.retiredAt).toEqual(expect.any(String))
    expect(verifyEvidence(signed, after, 'erasure-certificate.v1').key.status).toBe('retired')
  })

  it('annalist serve publishes the same JWK Set on GET /v1/keys/signing without a key', async () => {
    const env = { ...process.env, DATABASE_URL: database.url, ANNALIST_INTEGRITY_KEY: generateIntegrityKey(), ANNALIST_SIGNING_KEY_DIR: directory }
    const { child, baseUrl } = await startServe(env)
    try {
      const response = await fetch(`${baseUrl}/v1/keys/signing`)
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual(await publicKeys())
    } finally {
      child.kill('SIGTERM')
      await new Promise((resolve) => child.once('exit', resolve))
    }
  })

  it('refuses a key directory other users may read, naming the variable', async () => {
    await chmod(directory, 0o750)
    try {
      const line = `annalist: ANNALIST_SIGNING_KEY_DIR: ${directory} is open to other users (mode 0750); the directory must be 0700${HINT}`
      expect(refusal(await run(['keys', 'public']))).toBe(line)
      expect(refusal(await run(['serve', '--port', '0'], { ANNALIST_INTEGRITY_KEY: generateIntegrityKey() }))).toBe(line)
    } finally {
      await chmod(directory, 0o700)
    }
  })
})
