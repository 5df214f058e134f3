import { chmod, mkdir, readdir, readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NO_SIGNING_KEYS } from '../../api/routes/signingKeyRoutes'
import { buildApiServer } from '../../api/server'
import { ConfigError } from '../../cli/runtime/config'
import { signingKeyStoreFromEnv } from '../../cli/runtime/signingKeyConfig'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { signEvidence, verifyEvidence } from '../../historian/evidence/evidence'
import { SigningKeyDirectoryError } from '../../historian/evidence/evidenceErrors'
import { FileSigningKeyStore, initSigningKeyDirectory, rotateSigningKey, SIGNING_KEY_STATE_FILE } from '../../historian/evidence/fileSigningKeyStore'
import { signingKeyId, type SigningKeySet } from '../../historian/evidence/signingKeys'
import { freshPgliteDatabase, randomKeyRing } from '../support/databases'
import { scratchDirs } from '../support/scratchDirs'

const modeOf = async (file: string) => (await stat(file)).mode & 0o777
const KIND = 'erasure-certificate.v1'
const newDir = scratchDirs('annalist-signing-')

/** A fresh, not yet existing key directory below a scratch directory (so init creates it and a parent). */
const keyDirectory = async () => path.join(await newDir(), 'secrets', 'signing')

describe('the signing key directory', () => {
  it('init creates the directory and its missing parents 0700, one current key in a 0600 PEM and a 0600 state file', async () => {
    const directory = await keyDirectory()
    const { current } = await initSigningKeyDirectory(directory, new Date('2026-12-01T10:00:00Z'))
    expect(await modeOf(directory)).toBe(0o700)
    expect(await modeOf(path.dirname(directory))).toBe(0o700)
    expect((await readdir(directory)).sort()).toEqual([`${current.kid}.pem`, SIGNING_KEY_STATE_FILE].sort())
    for (const file of await readdir(directory)) expect(await modeOf(path.join(directory, file)), file).toBe(0o600)
    expect(await readFile(path.join(directory, `${current.kid}.pem`), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/)

    const keys = await (await FileSigningKeyStore.open(directory)).publicKeys()
    expect(keys).toEqual({
      keys: [{ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', kid: current.kid, x: expect.any(String), status: 'current', createdAt: '2026-12-01T10:00:00.000Z' }],
    })
    expect(signingKeyId(keys.keys[0]!.x)).toBe(current.kid)
    await expect(initSigningKeyDirectory(directory)).rejects.toThrow(`${directory} already holds signing keys (${SIGNING_KEY_STATE_FILE}); rotate them with \`annalist keys signing rotate\``)
    expect(await readdir(directory)).toHaveLength(2)
  })

  it('of two concurrent inits, one creates the keys and the other is refused, leaving no second key behind', async () => {
    const directory = await keyDirectory()
    const results = await Promise.allSettled([initSigningKeyDirectory(directory), initSigningKeyDirectory(directory)])
    expect(results.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected'])
    const won = results.find((result) => result.status === 'fulfilled')!.value
    expect((await readdir(directory)).sort()).toEqual([`${won.current.kid}.pem`, SIGNING_KEY_STATE_FILE].sort())
  })

  it('rotate makes a new key current and retires the old one, and the JWK Set lists both with their statuses and times', async () => {
    const directory = await keyDirectory()
    const first = await initSigningKeyDirectory(directory, new Date('2026-12-01T10:00:00Z'))
    const store = await FileSigningKeyStore.open(directory)
    const before = await signEvidence(store, KIND, { n: 1 })
    expect(before.signature.kid).toBe(first.current.kid)

    const rotated = await rotateSigningKey(directory, new Date('2026-12-02T10:00:00Z'))
    expect(rotated.retired?.kid).toBe(first.current.kid)
    const { keys } = await store.publicKeys()
    expect(keys.map(({ kid, status, createdAt, retiredAt }) => ({ kid, status, createdAt, retiredAt }))).toEqual([
      { kid: first.current.kid, status: 'retired', createdAt: '2026-12-01T10:00:00.000Z', retiredAt: '2026-12-02T10:00:00.000Z' },
      { kid: rotated.current.kid, status: 'current', createdAt: '2026-12-02T10:00:00.000Z', retiredAt: undefined },
    ])
    // The same store instance signs with the new key at once; what the old key signed still verifies.
    const after = await signEvidence(store, KIND, { n: 2 })
    expect(after.signature.kid).toBe(rotated.current.kid)
    const published = await store.publicKeys()
    expect(verifyEvidence(before, published, KIND).key.status).toBe('retired')
    expect(verifyEvidence(after, published, KIND).key.status).toBe('current')
    for (const file of await readdir(directory)) expect(await modeOf(path.join(directory, file)), file).toBe(0o600)
  })

  describe('refuses in one line', () => {
    const refusal = async (promise: Promise<unknown>): Promise<string> => {
      const error = await promise.then(
        () => undefined,
        (caught: unknown) => caught,
      )
      expect(error).toBeInstanceOf(SigningKeyDirectoryError)
      const message = (error as Error).message
      expect(message.split('\n')).toHaveLength(1)
      return message
    }

    it('a missing directory', async () => {
      const directory = await keyDirectory()
      expect(await refusal(FileSigningKeyStore.open(directory))).toBe(`${directory} is missing: create it and a first key with \`annalist keys signing init\``)
      await expect(rotateSigningKey(directory)).rejects.toThrow(SigningKeyDirectoryError)
    })

    it('a directory, state file or key file that other users may read, and init into an open directory', async () => {
      const directory = await keyDirectory()
      const { current } = await initSigningKeyDirectory(directory)
      const store = await FileSigningKeyStore.open(directory)
      await chmod(directory, 0o755)
      expect(await refusal(store.publicKeys())).toBe(`${directory} is open to other users (mode 0755); the directory must be 0700`)
      await chmod(directory, 0o700)
      await chmod(path.join(directory, SIGNING_KEY_STATE_FILE), 0o644)
      expect(await refusal(FileSigningKeyStore.open(directory))).toBe(`${directory} holds ${SIGNING_KEY_STATE_FILE}, which is open to other users (mode 0644); the file must be 0600`)
      await chmod(path.join(directory, SIGNING_KEY_STATE_FILE), 0o600)
      await chmod(path.join(directory, `${current.kid}.pem`), 0o640)
      expect(await refusal((await FileSigningKeyStore.open(directory)).currentSigner())).toBe(
        `${directory} holds ${current.kid}.pem, which is open to other users (mode 0640); the file must be 0600`,
      )
      await expect(rotateSigningKey(directory)).rejects.toThrow(SigningKeyDirectoryError)
      expect(await readdir(directory)).toHaveLength(2)

      const open = path.join(await newDir(), 'shared')
      await mkdir(open, { mode: 0o755 })
      await chmod(open, 0o755)
      expect(await refusal(initSigningKeyDirectory(open))).toBe(`${open} is open to other users (mode 0755); the directory must be 0700`)
      expect(await readdir(open)).toEqual([])
    })

    it('names ANNALIST_SIGNING_KEY_DIR when the configured directory is refused', async () => {
      const directory = await keyDirectory()
      const error = await signingKeyStoreFromEnv({ ANNALIST_SIGNING_KEY_DIR: directory }).catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as Error).message).toBe(`ANNALIST_SIGNING_KEY_DIR: ${directory} is missing: create it and a first key with \`annalist keys signing init\``)
      expect(await signingKeyStoreFromEnv({})).toBeUndefined()
    })
  })
})

describe('GET /v1/keys/signing', () => {
  let database: Database
  let store: PostgresEventStore
  let app: FastifyInstance
  let directory: string

  beforeAll(async () => {
    database = await freshPgliteDatabase()
    store = new PostgresEventStore(database)
    directory = await keyDirectory()
    await initSigningKeyDirectory(directory)
    app = buildApiServer({ pool: database.pool, store, keyRing: randomKeyRing(), signingKeys: await FileSigningKeyStore.open(directory) })
    await app.ready()
  })
  afterAll(async () => {
    await app?.close()
    await store?.close()
    await database?.close()
  })

  const published = async (): Promise<SigningKeySet> => {
    const response = await app.inject({ method: 'GET', url: '/v1/keys/signing' })
    expect(response.statusCode).toBe(200)
    expect(response.headers['content-type']).toMatch(/^application\/json/)
    return response.json()
  }

  it('answers the JWK Set without a key, and a document signed with the current key verifies against it', async () => {
    const signingKeys = await FileSigningKeyStore.open(directory)
    const keys = await published()
    expect(keys).toEqual(await signingKeys.publicKeys())
    expect(keys.keys.map((key) => key.status)).toEqual(['current'])
    const document = JSON.parse(JSON.stringify(await signEvidence(signingKeys, KIND, { tenantId: 'acme', erased: ['task-1'] }))) as unknown
    expect(verifyEvidence(document, keys, KIND).payload).toEqual({ tenantId: 'acme', erased: ['task-1'] })
  })

  it('after a rotation the running server publishes both keys, and a document signed before it still verifies', async () => {
    const signingKeys = await FileSigningKeyStore.open(directory)
    const before = await signEvidence(signingKeys, KIND, { n: 'before' })
    const { current, retired } = await rotateSigningKey(directory)
    const keys = await published()
    expect(keys.keys.map(({ kid, status }) => ({ kid, status }))).toEqual([
      { kid: retired!.kid, status: 'retired' },
      { kid: current.kid, status: 'current' },
    ])
    expect(verifyEvidence(before, keys, KIND).key.kid).toBe(retired!.kid)
    expect(verifyEvidence(await signEvidence(signingKeys, KIND, { n: 'after' }), keys, KIND).key.kid).toBe(current.kid)
  })

  it('answers 503 with one line on a server without signing keys, and is in the OpenAPI document as a public route', async () => {
    const bare = buildApiServer({ pool: database.pool, store, keyRing: randomKeyRing() })
    try {
      const response = await bare.inject({ method: 'GET', url: '/v1/keys/signing' })
      expect(response.statusCode).toBe(503)
      expect(response.json()).toEqual(NO_SIGNING_KEYS)
    } finally {
      await bare.close()
    }
    const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, { get?: { security?: unknown; responses?: object } }> }
    const route = document.paths['/v1/keys/signing']?.get
    expect(route?.security).toBeUndefined()
    expect(Object.keys(route?.responses ?? {}).sort()).toEqual(['200', '400', '503'])
  })
})
