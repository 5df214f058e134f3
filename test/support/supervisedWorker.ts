import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Client, Connection } from '@temporalio/client'
import { inject } from 'vitest'
import type { FaultPlan } from '../../activities/faults'
import { SupervisedProcess } from '../../cli/runtime/supervisedProcess'
import { openDatabase, type Database } from '../../historian/adapters/postgres/database'
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../historian/adapters/postgres/embeddedServer'
import { generateIntegrityKey, TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { freshPostgresDatabase } from './databases'
import { sharedWorkflowBundle, uniqueSuffix } from './pipelineHarness'

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
  readonly keyRing: TenantKeyRing
  close(): Promise<void>
}

/** Starts the database and prepares a supervised worker child on its own task queue, running `faults` (ANNALIST_FAULTS). */
export async function supervisedWorker(options: {
  kind: 'postgres server' | 'embedded PGlite'
  faults: FaultPlan
  /** Scripted model latency, so a test can kill the worker mid-call. */
  scriptedLatencyMs?: number
}): Promise<SupervisedWorker> {
  const workDir = mkdtempSync(path.join(tmpdir(), 'annalist-worker-'))
  const ledgerPath = path.join(workDir, 'calls.jsonl')
  let embedded: EmbeddedPostgres | undefined
  let database: Database & { url: string }
  if (options.kind === 'postgres server') {
    database = await freshPostgresDatabase()
  } else {
    embedded = await startEmbeddedPostgres({ dataDir: path.join(workDir, 'pgdata') })
    database = Object.assign(await openDatabase({ url: embedded.url }), { url: embedded.url })
  }
  const bundlePath = path.join(workDir, 'workflow-bundle.js')
  writeFileSync(bundlePath, (await sharedWorkflowBundle()).code)
  const connection = await Connection.connect({ address: inject('temporalAddress') })
  const taskQueue = `worker-${uniqueSuffix()}`
  const integrityKey = generateIntegrityKey()
  const worker = new SupervisedProcess(
    'worker',
    ['worker'],
    {
      ...process.env,
      DATABASE_URL: database.url,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      ANNALIST_TASK_QUEUE: taskQueue,
      ANNALIST_WORKFLOW_BUNDLE: bundlePath,
      ANNALIST_MODEL_LEDGER: ledgerPath,
      ANNALIST_SCRIPTED_LATENCY_MS: String(options.scriptedLatencyMs ?? 0),
      ANNALIST_FAULTS: JSON.stringify(options.faults),
      ANNALIST_INTEGRITY_KEY: integrityKey,
      ANNALIST_INTEGRITY_KEY_FILE: '',
    },
    path.join(workDir, 'worker.log'),
  )
  return {
    database,
    worker,
    client: new Client({ connection }),
    taskQueue,
    ledgerPath,
    keyRing: TenantKeyRing.fromText(integrityKey),
    async close() {
      await worker.stop()
      await connection.close()
      await database.close()
      await embedded?.close()
      rmSync(workDir, { recursive: true, force: true })
    },
  }
}
