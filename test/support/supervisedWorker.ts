import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Client, Connection } from '@temporalio/client'
import { inject } from 'vitest'
import type { FaultPlan } from '../../dev/faults/faultPlan'
import { SupervisedProcess } from '../../dev/supervisor/supervisedProcess'
import { openDatabase, type Database } from '../../historian/adapters/postgres/database'
import { startEmbeddedPostgres } from '../../dev/embeddedPostgres/embeddedServer'
import { generateIntegrityKey, TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { freshPostgresDatabase } from './databases'
import { uniqueSuffix } from './pipelineHarness'
import { operatorKeyEnv } from './operatorKey'

/** Which database a process test runs on, for `describe.each`. */
export type ServedDatabaseKind = 'postgres server' | 'embedded PGlite'

/** A database other processes reach by its URL; `close()` closes it and drops it (server) or stops serving it (PGlite). */
export interface ServedDatabase {
  readonly database: Database & { url: string }
  close(): Promise<void>
}

/** A fresh database on the PostgreSQL server, or an embedded PGlite in `workDir/pgdata` served over the wire protocol. */
export async function servedDatabase(kind: ServedDatabaseKind, workDir: string): Promise<ServedDatabase> {
  if (kind === 'postgres server') {
    const database = await freshPostgresDatabase()
    return { database, close: () => database.close() }
  }
  const embedded = await startEmbeddedPostgres({ dataDir: path.join(workDir, 'pgdata') })
  const database = Object.assign(await openDatabase({ url: embedded.url }), { url: embedded.url })
  return {
    database,
    async close() {
      await database.close()
      await embedded.close()
    },
  }
}

/** A real `annalist worker` child process for SIGKILL tests, with what the test needs to drive and check it. */
export interface SupervisedWorker {
  /** The worker's database: a fresh one on the PostgreSQL server, or an embedded PGlite served over the wire protocol. */
  readonly database: Database & { url: string }
  /** Restarted whenever it exits unasked; `kill()` it, read `unplannedExits`. Not started yet: call `worker.start()`. */
  readonly worker: SupervisedProcess
  readonly client: Client
  readonly taskQueue: string
  /** The scripted model's ledger of every model call the worker made. */
  readonly ledgerPath: string
  readonly integrityKey: string
  readonly keyRing: TenantKeyRing
  /** A scratch directory for the test (removed by `close()`); the worker logs are `<name>.log` in it. */
  readonly workDir: string
  /** The environment of a worker child, without ANNALIST_FAULTS (each worker sets its own). */
  readonly workerEnv: NodeJS.ProcessEnv
  /** The settings an `annalist` CLI run (`runAnnalist`) needs to reach this database, task queue and integrity key, with a global operator's API key. */
  readonly cliEnv: NodeJS.ProcessEnv
  /** Another worker child on the same task queue, running `faults`, logging to `workDir/<name>.log`; not started yet, stopped by `close()`. */
  addWorker(name: string, faults: FaultPlan): SupervisedProcess
  close(): Promise<void>
}

/** Starts the database and prepares a supervised worker child on its own task queue, running `faults` (ANNALIST_FAULTS). */
export async function supervisedWorker(options: {
  kind: ServedDatabaseKind
  faults: FaultPlan
  /** Scripted model latency, so a test can kill the worker mid-call. */
  scriptedLatencyMs?: number
  /** ANNALIST_MODEL_TIMEOUT_MS for the workers; unset, the configured default. */
  modelTimeoutMs?: number
  /** The task queue is `<prefix>-<unique suffix>`; `worker` unless given. */
  taskQueuePrefix?: string
  /** More settings for the worker children, e.g. a real model provider. */
  env?: NodeJS.ProcessEnv
}): Promise<SupervisedWorker> {
  const workDir = mkdtempSync(path.join(tmpdir(), 'annalist-worker-'))
  const ledgerPath = path.join(workDir, 'calls.jsonl')
  const served = await servedDatabase(options.kind, workDir)
  const { database } = served
  const connection = await Connection.connect({ address: inject('temporalAddress') })
  const taskQueue = `${options.taskQueuePrefix ?? 'worker'}-${uniqueSuffix()}`
  const integrityKey = generateIntegrityKey()
  const cliEnv = { DATABASE_URL: database.url, TEMPORAL_ADDRESS: inject('temporalAddress'), ANNALIST_TASK_QUEUE: taskQueue, ANNALIST_INTEGRITY_KEY: integrityKey }
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'ANNALIST_FAULTS'))
  const workerEnv: NodeJS.ProcessEnv = {
    ...inherited,
    ...cliEnv,
    ANNALIST_MODEL_LEDGER: ledgerPath,
    ANNALIST_SCRIPTED_LATENCY_MS: String(options.scriptedLatencyMs ?? 0),
    ...(options.modelTimeoutMs === undefined ? {} : { ANNALIST_MODEL_TIMEOUT_MS: String(options.modelTimeoutMs) }),
    ANNALIST_INTEGRITY_KEY_FILE: '',
    ...options.env,
  }
  const workers: SupervisedProcess[] = []
  const addWorker = (name: string, faults: FaultPlan) => {
    const added = new SupervisedProcess(name, ['worker'], { ...workerEnv, ANNALIST_FAULTS: JSON.stringify(faults) }, path.join(workDir, `${name}.log`))
    workers.push(added)
    return added
  }
  const worker = addWorker('worker', options.faults)
  return {
    database,
    worker,
    client: new Client({ connection }),
    taskQueue,
    ledgerPath,
    integrityKey,
    keyRing: TenantKeyRing.fromText(integrityKey),
    workDir,
    workerEnv,
    cliEnv: { ...cliEnv, ...(await operatorKeyEnv(database.pool)) },
    addWorker,
    async close() {
      for (const each of workers) await each.stop()
      await connection.close()
      await served.close()
      rmSync(workDir, { recursive: true, force: true })
    },
  }
}
