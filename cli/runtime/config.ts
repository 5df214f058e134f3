import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { modelConfigFromEnv, type ModelConfig } from '../../activities/models/modelsFromConfig'
import { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { KEK_FILE_VARIABLE, KEK_VARIABLE, KekRing } from '../../historian/keys/keyEncryptionKeys'
import { DEFAULT_KEY_CACHE_TTL_MS } from '../../historian/keys/postgresKeyStore'
import { AGENT_PIPELINE_TASK_QUEUE } from '../../workflows/api'

/** Thrown when an environment variable is missing or invalid; the message names the variable. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`)
    this.name = 'ConfigError'
  }
}

/** An empty or blank variable counts as unset (zod preprocessor). */
export const emptyAsUnset = (value: unknown) => (typeof value === 'string' && value.trim() === '' ? undefined : value)
const optional = <T extends z.ZodType>(schema: T) => z.preprocess(emptyAsUnset, schema.optional())

const Env = z.object({
  DATABASE_URL: optional(z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')),
  ESDB_CONNECTION_STRING: optional(z.string().regex(/^(esdb|esdb\+discover|kurrentdb|kurrentdb\+discover|kdb|kdb\+discover):\/\//, 'must be an esdb:// or kurrentdb:// connection string')),
  ANNALIST_DATA_DIR: optional(z.string()),
  TEMPORAL_ADDRESS: optional(z.string().regex(/^[^\s:/]+:\d+$/, 'must be host:port, e.g. 127.0.0.1:7233')),
  TEMPORAL_NAMESPACE: optional(z.string().min(1)),
  ANNALIST_TASK_QUEUE: optional(z.string().min(1)),
  ANNALIST_INTEGRITY_KEY: optional(z.string()),
  ANNALIST_INTEGRITY_KEY_FILE: optional(z.string()),
  ANNALIST_KEK: optional(z.string()),
  ANNALIST_KEK_FILE: optional(z.string()),
  ANNALIST_KEY_CACHE_SECONDS: optional(z.coerce.number().int('must be a whole number of seconds').min(0, 'must be 0 (no cache) or more').max(3600, 'must be at most 3600 (an hour)')),
  ANNALIST_API_KEY: optional(z.string()),
  ANNALIST_STATEMENT_TIMEOUT_MS: optional(z.coerce.number().int('must be a whole number of milliseconds').min(0, 'must be 0 (none) or more')),
})

/** Everything a process needs to know from its environment, validated once in its composition root. */
export interface AnnalistConfig {
  readonly databaseUrl?: string
  readonly esdbConnectionString?: string
  readonly dataDir: string
  readonly pgliteDataDir: string
  readonly temporalAddress?: string
  readonly temporalNamespace: string
  readonly taskQueue: string
  readonly models: ModelConfig
  /** The tenant-scoped hash-chain keys, from ANNALIST_INTEGRITY_KEY or ANNALIST_INTEGRITY_KEY_FILE; unset if neither is. */
  readonly integrityKeyRing?: TenantKeyRing
  /** The key-encryption keys by version, from ANNALIST_KEK or ANNALIST_KEK_FILE (docs/erasure.md); unset if neither is. */
  readonly kek?: KekRing
  /** How long a process keeps unwrapped keys (ANNALIST_KEY_CACHE_SECONDS, default 60 s): erasure reaches every process within it. */
  readonly keyCacheTtlMs: number
  /** The caller's API key (ANNALIST_API_KEY), which state-changing commands check (cli/runtime/callerPermission.ts). Never print it. */
  readonly apiKey?: string
  /** How long one SQL statement may run on a PostgreSQL server (ANNALIST_STATEMENT_TIMEOUT_MS); unset: the database default. */
  readonly statementTimeoutMs?: number
}

/** Reads and validates the environment; throws ConfigError naming the first bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AnnalistConfig {
  const parsed = Env.safeParse(env)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new ConfigError(String(issue.path[0] ?? 'environment'), issue.message)
  }
  const vars = parsed.data
  const dataDir = path.resolve(vars.ANNALIST_DATA_DIR ?? '.annalist')
  return {
    databaseUrl: vars.DATABASE_URL,
    esdbConnectionString: vars.ESDB_CONNECTION_STRING,
    dataDir,
    pgliteDataDir: path.join(dataDir, 'pgdata'),
    temporalAddress: vars.TEMPORAL_ADDRESS,
    temporalNamespace: vars.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue: vars.ANNALIST_TASK_QUEUE ?? AGENT_PIPELINE_TASK_QUEUE,
    models: modelConfigFromEnv(env),
    integrityKeyRing: secretFrom(INTEGRITY_KEY_SOURCE, vars.ANNALIST_INTEGRITY_KEY, vars.ANNALIST_INTEGRITY_KEY_FILE),
    kek: secretFrom(KEK_SOURCE, vars.ANNALIST_KEK, vars.ANNALIST_KEK_FILE),
    keyCacheTtlMs: vars.ANNALIST_KEY_CACHE_SECONDS === undefined ? DEFAULT_KEY_CACHE_TTL_MS : vars.ANNALIST_KEY_CACHE_SECONDS * 1000,
    apiKey: vars.ANNALIST_API_KEY?.trim(),
    statementTimeoutMs: vars.ANNALIST_STATEMENT_TIMEOUT_MS,
  }
}

/** A secret given inline in one variable or in a file named by another: how to parse it, and whether its file must be private. */
interface SecretSource<T> {
  readonly variable: string
  readonly fileVariable: string
  /** Parses the text; throws an error whose message says what is wrong without echoing the secret. */
  parse(text: string, variable: string): T
  /** Refuse a file that its group or others may read or write (mode & 0o077). */
  readonly privateFile: boolean
}

const INTEGRITY_KEY_SOURCE: SecretSource<TenantKeyRing> = {
  variable: 'ANNALIST_INTEGRITY_KEY',
  fileVariable: 'ANNALIST_INTEGRITY_KEY_FILE',
  parse: (text) => TenantKeyRing.fromText(text),
  privateFile: false,
}

const KEK_SOURCE: SecretSource<KekRing> = {
  variable: KEK_VARIABLE,
  fileVariable: KEK_FILE_VARIABLE,
  parse: (text, variable) => KekRing.fromText(text, variable),
  privateFile: true,
}

/** The secret from the one variable that holds it (inline or as a file), if any; a malformed one throws ConfigError naming the variable. */
function secretFrom<T>(source: SecretSource<T>, inline: string | undefined, file: string | undefined): T | undefined {
  if (inline !== undefined && file !== undefined) throw new ConfigError(source.variable, `set either it or ${source.fileVariable}, not both`)
  if (inline !== undefined) {
    try {
      return source.parse(inline, source.variable)
    } catch (error) {
      throw new ConfigError(source.variable, (error as Error).message)
    }
  }
  if (file === undefined) return undefined
  const keyPath = path.resolve(file)
  let text: string
  try {
    if (source.privateFile) {
      const mode = statSync(keyPath).mode & 0o777
      if ((mode & 0o077) !== 0) throw new ConfigError(source.fileVariable, `${keyPath} has mode ${mode.toString(8).padStart(4, '0')}; a key file must be readable by its owner only (chmod 600)`)
    }
    text = readFileSync(keyPath, 'utf8')
  } catch (error) {
    if (error instanceof ConfigError) throw error
    throw new ConfigError(source.fileVariable, `cannot read ${keyPath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  try {
    return source.parse(text, source.fileVariable)
  } catch (error) {
    throw new ConfigError(source.fileVariable, `the key in ${keyPath} ${(error as Error).message}`)
  }
}

/** The integrity key ring, for processes that append or verify; throws ConfigError naming the variable when it is unset. */
export function requireIntegrityKeyRing(config: Pick<AnnalistConfig, 'integrityKeyRing'>): TenantKeyRing {
  if (config.integrityKeyRing) return config.integrityKeyRing
  throw new ConfigError(
    'ANNALIST_INTEGRITY_KEY',
    'not set; appending and verifying need the master integrity key: set it to at least 32 random bytes as hex or base64 (e.g. `openssl rand -hex 32`), or set ANNALIST_INTEGRITY_KEY_FILE to a file holding one',
  )
}

/** The key-encryption keys, for processes that encrypt, decrypt or manage keys; throws ConfigError naming the variable when unset. */
export function requireKek(config: Pick<AnnalistConfig, 'kek'>): KekRing {
  if (config.kek) return config.kek
  throw new ConfigError(
    KEK_VARIABLE,
    `not set; encryption keys are wrapped by a key-encryption key: set it to 32 random bytes as 64 hex characters (\`openssl rand -hex 32\`), or set ${KEK_FILE_VARIABLE} to a file (mode 0600) holding one (docs/erasure.md)`,
  )
}
