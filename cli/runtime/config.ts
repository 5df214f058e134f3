import { readFileSync } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { modelConfigFromEnv, type ModelConfig } from '../../activities/models/modelsFromConfig'
import { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
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
    integrityKeyRing: integrityKeyRingFrom(vars.ANNALIST_INTEGRITY_KEY, vars.ANNALIST_INTEGRITY_KEY_FILE),
    apiKey: vars.ANNALIST_API_KEY?.trim(),
    statementTimeoutMs: vars.ANNALIST_STATEMENT_TIMEOUT_MS,
  }
}

/** The master integrity key from the one variable that holds it, if any; a malformed key throws ConfigError naming it. */
function integrityKeyRingFrom(inline: string | undefined, file: string | undefined): TenantKeyRing | undefined {
  if (inline !== undefined && file !== undefined) throw new ConfigError('ANNALIST_INTEGRITY_KEY', 'set either it or ANNALIST_INTEGRITY_KEY_FILE, not both')
  if (inline !== undefined) {
    try {
      return TenantKeyRing.fromText(inline)
    } catch (error) {
      throw new ConfigError('ANNALIST_INTEGRITY_KEY', (error as Error).message)
    }
  }
  if (file === undefined) return undefined
  const keyPath = path.resolve(file)
  let text: string
  try {
    text = readFileSync(keyPath, 'utf8')
  } catch (error) {
    throw new ConfigError('ANNALIST_INTEGRITY_KEY_FILE', `cannot read ${keyPath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  try {
    return TenantKeyRing.fromText(text)
  } catch (error) {
    throw new ConfigError('ANNALIST_INTEGRITY_KEY_FILE', `the key in ${keyPath} ${(error as Error).message}`)
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
