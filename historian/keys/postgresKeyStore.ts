import { randomBytes, randomUUID } from 'node:crypto'
import type pg from 'pg'
import { KEY_BYTES, open, seal, SealBrokenError, type Sealed } from './aesGcm'
import { ExpiringCache } from './expiringCache'
import type { KekRing } from './keyEncryptionKeys'
import {
  KekError,
  KeyDestroyedError,
  UnknownKeyError,
  WrappedKeyTamperedError,
  type DataKey,
  type KeyDestruction,
  type KeyStore,
  type RewrapProgress,
  type RewrapResult,
} from './keyStore'

/** How long a process keeps an unwrapped key unless told otherwise: a destruction takes effect everywhere within it. */
export const DEFAULT_KEY_CACHE_TTL_MS = 60_000

/** How many tenant keys one rewrap transaction moves unless told otherwise. */
export const DEFAULT_REWRAP_BATCH_SIZE = 100

const KEK_CHECK_TEXT = 'annalist key-encryption key check'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

type Queryable = Pick<pg.PoolClient, 'query'>

/** The additional data a wrapped tenant key is bound to: moved to another tenant, ID or KEK version, it no longer opens. */
const tenantKeyContext = (tenantId: string, keyId: string, kekVersion: number) => JSON.stringify(['annalist:tenant-key:v1', tenantId, keyId, kekVersion])
/** The additional data a wrapped data key is bound to: its tenant, task, own ID and the tenant key that wraps it. */
const dataKeyContext = (tenantId: string, taskId: string, keyId: string, tenantKeyId: string) => JSON.stringify(['annalist:data-key:v1', tenantId, taskId, keyId, tenantKeyId])
const kekCheckContext = (version: number) => JSON.stringify(['annalist:kek-check:v1', version])

interface TenantKeyRow {
  key_id: string
  tenant_id: string
  kek_version: number
  nonce: Buffer
  wrapped: Buffer
}

interface DataKeyRow {
  key_id: string
  tenant_id: string
  task_id: string
  tenant_key_id: string
  nonce: Buffer
  wrapped: Buffer
}

/** The options of a PostgresKeyStore. */
export interface PostgresKeyStoreOptions {
  /** The configured key-encryption keys (ANNALIST_KEK or ANNALIST_KEK_FILE). */
  readonly kek: KekRing
  /** How long unwrapped keys stay in this process's memory (default DEFAULT_KEY_CACHE_TTL_MS; 0: not at all). */
  readonly cacheTtlMs?: number
  /** The clock of the cache, in milliseconds (default Date.now). */
  readonly now?: () => number
}

/**
 * The default KeyStore: wrapped keys in PostgreSQL (migration 019), unwrapped with AES-256-GCM (aesGcm.ts) and kept in
 * this process for at most `cacheTtlMs`. Works on a server and on PGlite (whose pool has one client: while a transaction
 * holds it, only that client is used).
 */
export class PostgresKeyStore implements KeyStore {
  readonly #pool: pg.Pool
  readonly #kek: KekRing
  readonly #verifiedKekVersions = new Set<number>()
  readonly #tenantKeys: ExpiringCache<{ tenantId: string; key: Buffer }>
  readonly #dataKeys: ExpiringCache<DataKey>

  constructor(pool: pg.Pool, options: PostgresKeyStoreOptions) {
    this.#pool = pool
    this.#kek = options.kek
    const ttl = options.cacheTtlMs ?? DEFAULT_KEY_CACHE_TTL_MS
    const now = options.now ?? Date.now
    this.#tenantKeys = new ExpiringCache(ttl, now)
    this.#dataKeys = new ExpiringCache(ttl, now)
  }

  async dataKeyFor(tenantId: string, taskId: string): Promise<DataKey> {
    const cached = this.#dataKeys.get(taskCacheKey(tenantId, taskId))
    if (cached) return cached
    const existing = await this.#readTaskDataKey(this.#pool, tenantId, taskId)
    if (existing) return existing
    await this.#transaction(tenantId, async (client) => {
      await this.#refuseDestroyed(client, tenantId, taskId)
      const tenantKey = await this.#currentTenantKey(client, tenantId)
      const keyId = randomUUID()
      const wrapped = seal(tenantKey.key, randomBytes(KEY_BYTES), dataKeyContext(tenantId, taskId, keyId, tenantKey.keyId))
      await client.query(
        `insert into task_data_keys (key_id, tenant_id, task_id, tenant_key_id, nonce, wrapped) values ($1, $2, $3, $4, $5, $6)
         on conflict (tenant_id, task_id) do nothing`,
        [keyId, tenantId, taskId, tenantKey.keyId, wrapped.nonce, wrapped.ciphertext],
      )
    })
    const created = await this.#readTaskDataKey(this.#pool, tenantId, taskId)
    if (!created) throw new Error(`the data key of task ${JSON.stringify(taskId)} vanished right after it was created (destroyed concurrently?)`)
    return created
  }

  async dataKeyById(keyId: string): Promise<DataKey> {
    if (!UUID.test(keyId)) throw new UnknownKeyError(keyId)
    const cached = this.#dataKeys.get(idCacheKey(keyId))
    if (cached) return cached
    const { rows } = await this.#pool.query<DataKeyRow>('select key_id, tenant_id, task_id, tenant_key_id, nonce, wrapped from task_data_keys where key_id = $1', [keyId])
    if (rows[0]) return this.#unwrapDataKey(this.#pool, rows[0])
    throw await this.#missingKeyError(this.#pool, keyId)
  }

  async rotateTenantKey(tenantId: string): Promise<{ keyId: string; previousKeyId: string | null }> {
    return this.#transaction(tenantId, async (client) => {
      await this.#refuseDestroyed(client, tenantId, null)
      const { rows } = await client.query<{ key_id: string }>('update tenant_keys set is_current = false where tenant_id = $1 and is_current returning key_id', [tenantId])
      const keyId = await this.#insertTenantKey(client, tenantId)
      return { keyId, previousKeyId: rows[0]?.key_id ?? null }
    })
  }

  async rewrap(options: { batchSize?: number; onProgress?: (progress: RewrapProgress) => void } = {}): Promise<RewrapResult> {
    const batchSize = options.batchSize ?? DEFAULT_REWRAP_BATCH_SIZE
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`a rewrap batch holds 1 or more keys, not ${batchSize}`)
    const kekVersion = this.#kek.currentVersion
    const inUse = await this.#pool.query<{ kek_version: number; tenant_id: string }>(
      'select kek_version, min(tenant_id) as tenant_id from tenant_keys where kek_version <> $1 group by kek_version order by kek_version',
      [kekVersion],
    )
    const unconfigured = inUse.rows.find((row) => this.#kek.key(row.kek_version) === undefined)
    if (unconfigured) throw this.#missingKekVersion(unconfigured.kek_version, unconfigured.tenant_id)
    await this.#withClient((client) => this.#assertWritableKek(client))
    const counted = await this.#pool.query<{ remaining: string }>('select count(*) as remaining from tenant_keys where kek_version <> $1', [kekVersion])
    let remaining = Number(counted.rows[0]!.remaining)
    let rewrapped = 0
    do {
      for (let moved = await this.#rewrapBatch(kekVersion, batchSize); moved > 0; moved = await this.#rewrapBatch(kekVersion, batchSize)) {
        rewrapped += moved
        remaining = Math.max(remaining - moved, 0)
        options.onProgress?.({ rewrapped, remaining })
      }
    } while (!(await this.#retireVersionsBefore(kekVersion)))
    const retired = await this.#pool.query<{ version: number }>('select version from key_encryption_keys where version < $1 and retired_at is not null order by version', [kekVersion])
    return { kekVersion, rewrapped, retiredVersions: retired.rows.map((row) => row.version) }
  }

  async destroyTaskKeys(tenantId: string, taskId: string): Promise<KeyDestruction> {
    const destroyedKeyIds = await this.#transaction(tenantId, async (client) => {
      const { rows } = await client.query<{ key_id: string }>('delete from task_data_keys where tenant_id = $1 and task_id = $2 returning key_id', [tenantId, taskId])
      await recordDestroyedKeys(client, tenantId, rows.map((row) => ({ keyId: row.key_id, taskId })))
      await client.query('insert into destroyed_key_scopes (tenant_id, task_id) values ($1, $2) on conflict do nothing', [tenantId, taskId])
      const all = await client.query<{ key_id: string }>('select key_id from destroyed_keys where tenant_id = $1 and task_id = $2 order by key_id', [tenantId, taskId])
      return all.rows.map((row) => row.key_id)
    })
    this.#dataKeys.deleteWhere((key) => key.tenantId === tenantId && key.taskId === taskId)
    return { tenantId, taskId, destroyedKeyIds }
  }

  async destroyTenantKeys(tenantId: string): Promise<KeyDestruction> {
    const destroyedKeyIds = await this.#transaction(tenantId, async (client) => {
      const dataKeys = await client.query<{ key_id: string; task_id: string }>('delete from task_data_keys where tenant_id = $1 returning key_id, task_id', [tenantId])
      const tenantKeys = await client.query<{ key_id: string }>('delete from tenant_keys where tenant_id = $1 returning key_id', [tenantId])
      await recordDestroyedKeys(client, tenantId, [
        ...dataKeys.rows.map((row) => ({ keyId: row.key_id, taskId: row.task_id })),
        ...tenantKeys.rows.map((row) => ({ keyId: row.key_id, taskId: null })),
      ])
      await client.query('insert into destroyed_key_scopes (tenant_id, task_id) values ($1, null) on conflict do nothing', [tenantId])
      const all = await client.query<{ key_id: string }>('select key_id from destroyed_keys where tenant_id = $1 order by key_id', [tenantId])
      return all.rows.map((row) => row.key_id)
    })
    this.#dataKeys.deleteWhere((key) => key.tenantId === tenantId)
    this.#tenantKeys.deleteWhere((key) => key.tenantId === tenantId)
    return { tenantId, taskId: null, destroyedKeyIds }
  }

  /** Re-wraps up to `batchSize` tenant keys still under another KEK version, in one transaction; returns how many. */
  async #rewrapBatch(kekVersion: number, batchSize: number): Promise<number> {
    return this.#withClient(async (client) => {
      await client.query('begin')
      try {
        const { rows } = await client.query<TenantKeyRow>(
          'select key_id, tenant_id, kek_version, nonce, wrapped from tenant_keys where kek_version <> $1 order by key_id limit $2 for update',
          [kekVersion, batchSize],
        )
        for (const row of rows) {
          const key = await this.#unwrapTenantKeyRow(client, row)
          const wrapped = seal(this.#kek.key(kekVersion)!, key, tenantKeyContext(row.tenant_id, row.key_id, kekVersion))
          await client.query('update tenant_keys set kek_version = $2, nonce = $3, wrapped = $4 where key_id = $1', [row.key_id, kekVersion, wrapped.nonce, wrapped.ciphertext])
        }
        await client.query('commit')
        return rows.length
      } catch (error) {
        await client.query('rollback').catch(() => undefined)
        throw error
      }
    })
  }

  /**
   * Retires every unretired KEK version below `kekVersion`, unless a tenant key still uses one (written meanwhile by a
   * process on an older configuration): then it retires nothing and returns false, and the rewrap goes round again.
   * The row locks wait for writers that hold a share lock on an old version (#assertWritableKek) and keep new ones out.
   */
  async #retireVersionsBefore(kekVersion: number): Promise<boolean> {
    return this.#withClient(async (client) => {
      await client.query('begin')
      try {
        await client.query('select version from key_encryption_keys where version < $1 and retired_at is null for update', [kekVersion])
        const left = await client.query<{ n: number }>('select count(*)::int as n from tenant_keys where kek_version < $1', [kekVersion])
        if (left.rows[0]!.n > 0) {
          await client.query('rollback')
          return false
        }
        await client.query('update key_encryption_keys set retired_at = now() where version < $1 and retired_at is null', [kekVersion])
        await client.query('commit')
        return true
      } catch (error) {
        await client.query('rollback').catch(() => undefined)
        throw error
      }
    })
  }

  async #readTaskDataKey(queryable: Queryable, tenantId: string, taskId: string): Promise<DataKey | undefined> {
    const { rows } = await queryable.query<DataKeyRow>(
      'select key_id, tenant_id, task_id, tenant_key_id, nonce, wrapped from task_data_keys where tenant_id = $1 and task_id = $2',
      [tenantId, taskId],
    )
    if (!rows[0]) return undefined
    const key = await this.#unwrapDataKey(queryable, rows[0])
    this.#dataKeys.set(taskCacheKey(tenantId, taskId), key)
    return key
  }

  async #unwrapDataKey(queryable: Queryable, row: DataKeyRow): Promise<DataKey> {
    const tenantKey = await this.#tenantKeyById(queryable, row.tenant_key_id)
    if (tenantKey.tenantId !== row.tenant_id) throw new WrappedKeyTamperedError(row.key_id)
    const key = unwrapOrTampered(row.key_id, () => open(tenantKey.key, sealedOf(row), dataKeyContext(row.tenant_id, row.task_id, row.key_id, row.tenant_key_id)))
    const dataKey: DataKey = { keyId: row.key_id, tenantId: row.tenant_id, taskId: row.task_id, key }
    this.#dataKeys.set(idCacheKey(row.key_id), dataKey)
    return dataKey
  }

  async #tenantKeyById(queryable: Queryable, keyId: string): Promise<{ tenantId: string; key: Buffer }> {
    const cached = this.#tenantKeys.get(keyId)
    if (cached) return cached
    const { rows } = await queryable.query<TenantKeyRow>('select key_id, tenant_id, kek_version, nonce, wrapped from tenant_keys where key_id = $1', [keyId])
    if (!rows[0]) throw await this.#missingKeyError(queryable, keyId)
    const tenantKey = { tenantId: rows[0].tenant_id, key: await this.#unwrapTenantKeyRow(queryable, rows[0]) }
    this.#tenantKeys.set(keyId, tenantKey)
    return tenantKey
  }

  async #unwrapTenantKeyRow(queryable: Queryable, row: TenantKeyRow): Promise<Buffer> {
    const kek = this.#kek.key(row.kek_version)
    if (!kek) throw this.#missingKekVersion(row.kek_version, row.tenant_id)
    await this.#verifyKek(queryable, row.kek_version)
    return unwrapOrTampered(row.key_id, () => open(kek, sealedOf(row), tenantKeyContext(row.tenant_id, row.key_id, row.kek_version)))
  }

  /** The tenant's current key, created under the current KEK version when it has none. Call inside #transaction. */
  async #currentTenantKey(client: Queryable, tenantId: string): Promise<{ keyId: string; key: Buffer }> {
    const { rows } = await client.query<{ key_id: string }>('select key_id from tenant_keys where tenant_id = $1 and is_current', [tenantId])
    const keyId = rows[0]?.key_id ?? (await this.#insertTenantKey(client, tenantId))
    return { keyId, key: (await this.#tenantKeyById(client, keyId)).key }
  }

  async #insertTenantKey(client: Queryable, tenantId: string): Promise<string> {
    await this.#assertWritableKek(client)
    const version = this.#kek.currentVersion
    const keyId = randomUUID()
    const wrapped = seal(this.#kek.key(version)!, randomBytes(KEY_BYTES), tenantKeyContext(tenantId, keyId, version))
    await client.query('insert into tenant_keys (key_id, tenant_id, kek_version, nonce, wrapped, is_current) values ($1, $2, $3, $4, $5, true)', [
      keyId,
      tenantId,
      version,
      wrapped.nonce,
      wrapped.ciphertext,
    ])
    return keyId
  }

  #missingKekVersion(version: number, tenantId: string): KekError {
    return new KekError(this.#kek.source, `has no version ${version}, which wraps a key of tenant ${JSON.stringify(tenantId)}; configure it (as ${version}:<64 hex>) until \`annalist keys rewrap\` has run`)
  }

  /** Refuses to wrap with a KEK version that is retired or older than one in use, or that is the wrong key for its version. */
  async #assertWritableKek(client: Queryable): Promise<void> {
    const version = this.#kek.currentVersion
    const { rows } = await client.query<{ newest: number | null }>('select max(version) as newest from key_encryption_keys')
    const newest = rows[0]?.newest ?? null
    if (newest !== null && newest > version) {
      throw new KekError(this.#kek.source, `its newest version is ${version}, but version ${newest} is already in use here; configure version ${newest} as well`)
    }
    // Every other configured version this database knows must be right too, before a new version is recorded.
    const known = await client.query<{ version: number }>('select version from key_encryption_keys where version = any($1::int[]) and version <> $2 order by version', [this.#kek.versions, version])
    for (const row of known.rows) await this.#verifyKek(client, row.version)
    await this.#verifyKek(client, version, { record: true })
    // A share lock until the caller's transaction ends: `rewrap` cannot retire this version between this check and the insert.
    const current = await client.query<{ retired_at: Date | null }>('select retired_at from key_encryption_keys where version = $1 for share', [version])
    if (current.rows[0]?.retired_at) throw new KekError(this.#kek.source, `version ${version} was retired by \`annalist keys rewrap\`; configure a newer version (${version + 1}:<64 hex>)`)
  }

  /**
   * Checks (once per process) that the configured key of `version` is the one this database knows: its check value
   * opens. With `record`, a version the database does not know yet is recorded with a new check value.
   */
  async #verifyKek(queryable: Queryable, version: number, options: { record?: boolean } = {}): Promise<void> {
    if (this.#verifiedKekVersions.has(version) && !options.record) return
    const kek = this.#kek.key(version)!
    const readCheck = async () =>
      (await queryable.query<{ check_nonce: Buffer; check_ciphertext: Buffer }>('select check_nonce, check_ciphertext from key_encryption_keys where version = $1', [version])).rows[0]
    let stored = await readCheck()
    if (!stored) {
      if (!options.record) throw new Error(`KEK version ${version} is used by a wrapped key but has no check value in key_encryption_keys`)
      const check = seal(kek, Buffer.from(KEK_CHECK_TEXT), kekCheckContext(version))
      await queryable.query('insert into key_encryption_keys (version, check_nonce, check_ciphertext) values ($1, $2, $3) on conflict (version) do nothing', [
        version,
        check.nonce,
        check.ciphertext,
      ])
      stored = (await readCheck())!
    }
    if (this.#verifiedKekVersions.has(version)) return
    try {
      open(kek, { nonce: stored.check_nonce, ciphertext: stored.check_ciphertext }, kekCheckContext(version))
    } catch (error) {
      if (!(error instanceof SealBrokenError)) throw error
      throw new KekError(this.#kek.source, `version ${version} is not the key this database's keys were wrapped with (a wrong key?)`)
    }
    this.#verifiedKekVersions.add(version)
  }

  async #refuseDestroyed(queryable: Queryable, tenantId: string, taskId: string | null): Promise<void> {
    const { rows } = await queryable.query<{ task_id: string | null; destroyed_at: Date }>(
      'select task_id, destroyed_at from destroyed_key_scopes where tenant_id = $1 and (task_id is null or task_id = $2) order by task_id nulls first limit 1',
      [tenantId, taskId],
    )
    if (rows[0]) throw new KeyDestroyedError(tenantId, rows[0].task_id, rows[0].destroyed_at)
  }

  async #missingKeyError(queryable: Queryable, keyId: string): Promise<Error> {
    const { rows } = await queryable.query<{ tenant_id: string; task_id: string | null; destroyed_at: Date }>('select tenant_id, task_id, destroyed_at from destroyed_keys where key_id = $1', [keyId])
    return rows[0] ? new KeyDestroyedError(rows[0].tenant_id, rows[0].task_id, rows[0].destroyed_at) : new UnknownKeyError(keyId)
  }

  /** Runs `work` in a transaction that holds the tenant's key lock, so creation, rotation and destruction never interleave. */
  async #transaction<T>(tenantId: string, work: (client: Queryable) => Promise<T>): Promise<T> {
    return this.#withClient(async (client) => {
      await client.query('begin')
      try {
        await client.query("select pg_advisory_xact_lock(hashtextextended('annalist:keys:' || $1, 0))", [tenantId])
        const result = await work(client)
        await client.query('commit')
        return result
      } catch (error) {
        await client.query('rollback').catch(() => undefined)
        throw error
      }
    })
  }

  async #withClient<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect()
    try {
      return await work(client)
    } finally {
      client.release()
    }
  }
}

async function recordDestroyedKeys(client: Queryable, tenantId: string, keys: readonly { keyId: string; taskId: string | null }[]): Promise<void> {
  if (keys.length === 0) return
  await client.query(
    'insert into destroyed_keys (key_id, tenant_id, task_id) select key_id, $1, task_id from unnest($2::uuid[], $3::text[]) as destroyed(key_id, task_id) on conflict do nothing',
    [tenantId, keys.map((key) => key.keyId), keys.map((key) => key.taskId)],
  )
}

function unwrapOrTampered(keyId: string, unwrap: () => Buffer): Buffer {
  try {
    return unwrap()
  } catch (error) {
    if (error instanceof SealBrokenError) throw new WrappedKeyTamperedError(keyId)
    throw error
  }
}

const sealedOf = (row: { nonce: Buffer; wrapped: Buffer }): Sealed => ({ nonce: row.nonce, ciphertext: row.wrapped })
const taskCacheKey = (tenantId: string, taskId: string) => `task:${JSON.stringify([tenantId, taskId])}`
const idCacheKey = (keyId: string) => `id:${keyId}`
