import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Client, Connection } from '@temporalio/client'
import { openDatabase } from '../historian/adapters/postgres/database'
import { startEmbeddedPostgres } from '../dev/embeddedPostgres/embeddedServer'
import { PostgresEventStore } from '../historian/adapters/postgres/postgresEventStore'
import { MODEL_ROLES } from '../historian/events/catalogue'
import { Historian } from '../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../historian/integrity/tenantKeyRing'
import { readModelLedger } from '../cli/runtime/modelLedger'
import { pipelineChildEnv, preparePipelineRun } from '../dev/supervisor/pipelineChildEnv'
import { startPipeline } from '../cli/runtime/pipelineClient'
import { killMidModelCall } from '../dev/demo/recoveryProbe'
import { SupervisedProcess } from '../dev/supervisor/supervisedProcess'
import { Teardown } from '../dev/supervisor/teardown'
import { verifyRun } from '../cli/runtime/verifyRun'
import type { TaskRef } from '../workflows/api'
import { median } from './interleavedRounds'

/** What `measureRecovery` found. */
export interface RecoveryFigures {
  /** Median over the kills of (kill -> the pipeline's next recorded event) / heartbeat timeout. Goal <= 1.5. */
  readonly recoverySecondsOverHeartbeat: number
  /** Model calls started after their activity's outcome was recorded, across every measured pipeline (model ledger). Goal 0. */
  readonly modelCallsRepeatedAfterCrash: number
  readonly recoverySeconds: readonly number[]
  readonly killedCalls: readonly string[]
  readonly heartbeatTimeoutMs: number
  readonly retryInitialIntervalMs: number
  readonly modelLatencyMs: number
  readonly workers: number
  readonly store: string
}


/**
 * Two supervised `annalist worker` processes on one task queue; for each of `kills` pipelines, SIGKILLs the worker the
 * model ledger shows making one of its model calls (routing, planning, synthesis in turn), and times the kill to the
 * pipeline's next stored event (recorded_at; both clocks are this machine's). The other worker picks the activity up once
 * the heartbeat timeout declares the dead one gone. Then checks, over all those pipelines, that no model call whose
 * outcome was recorded was made again. The database is an embedded PGlite served from a temporary directory.
 */
export async function measureRecovery(options: {
  temporalAddress: string
  kills?: number
  heartbeatTimeoutMs?: number
  retryInitialIntervalMs?: number
  modelLatencyMs?: number
  onProgress?: (line: string) => void
}): Promise<RecoveryFigures> {
  const kills = options.kills ?? 6
  const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 2_000
  const retryInitialIntervalMs = options.retryInitialIntervalMs ?? 100
  const modelLatencyMs = options.modelLatencyMs ?? 300
  const progress = options.onProgress ?? (() => undefined)
  const dir = mkdtempSync(path.join(tmpdir(), 'annalist-bench-recovery-'))
  const teardown = new Teardown()
  teardown.add(async () => rmSync(dir, { recursive: true, force: true }))
  try {
    const embedded = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pgdata') })
    teardown.add(() => embedded.close())
    const database = await openDatabase({ url: embedded.url })
    teardown.add(() => database.close())
    const store = new PostgresEventStore(database)
    teardown.add(() => store.close())
    const integrityKey = generateIntegrityKey()
    const run = preparePipelineRun(dir, `bench-recovery-${Date.now().toString(36)}`)
    const env = pipelineChildEnv({
      ...run,
      databaseUrl: embedded.url,
      temporalAddress: options.temporalAddress,
      temporalNamespace: 'default',
      modelLatencyMs,
      modelTimeoutMs: 30_000,
      faults: { rules: [] },
      integrity: { ANNALIST_INTEGRITY_KEY: integrityKey, ANNALIST_INTEGRITY_KEY_FILE: '' },
    })
    const workers = [1, 2].map((n) => new SupervisedProcess(`worker${n}`, ['worker'], env, path.join(dir, `worker${n}.log`)))
    for (const worker of workers) {
      teardown.add(() => worker.stop())
      worker.start()
    }
    const connection = await Connection.connect({ address: options.temporalAddress })
    teardown.add(() => connection.close())
    const client = new Client({ connection })

    const tenantId = `recovery_${Date.now().toString(36)}`
    const tasks: TaskRef[] = []
    const recoverySeconds: number[] = []
    const killedCalls: string[] = []
    for (let k = 0; k < kills; k++) {
      const task = { tenantId, taskId: `kill-${k + 1}` }
      tasks.push(task)
      const role = MODEL_ROLES[k % MODEL_ROLES.length]!
      const handle = await startPipeline(
        client,
        { ...task, input: 'Search the knowledge base for the data retention policy', requestedBy: 'bench', tuning: { heartbeatTimeoutMs, retryInitialIntervalMs } },
        run.taskQueue,
      )
      const measured = await killMidModelCall({
        ledgerPath: run.modelLedgerPath,
        store,
        task,
        role,
        kill: (pid) => workers.find((worker) => worker.pid === pid)?.kill('SIGKILL') !== undefined,
      })
      if (!measured) throw new Error(`bench recovery: no ${role} call of ${task.taskId} seen`)
      await handle.result()
      recoverySeconds.push(measured.recoverySeconds)
      killedCalls.push(`${role} attempt ${measured.call.attempt} in worker ${measured.killedPid}`)
      progress(`kill ${k + 1}/${kills}: ${role} call, next event after ${measured.recoverySeconds.toFixed(2)} s (${(measured.recoverySeconds / (heartbeatTimeoutMs / 1_000)).toFixed(2)} x heartbeat timeout)`)
      // Let the killed worker come back, so every kill finds two workers.
      const deadline = Date.now() + 30_000
      while (workers.some((worker) => worker.pid === undefined) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const verification = await verifyRun({ historian: new Historian(store), pool: database.pool, tasks, ledger: readModelLedger(run.modelLedgerPath), keyRing: TenantKeyRing.fromText(integrityKey) })
    return {
      recoverySecondsOverHeartbeat: median(recoverySeconds) / (heartbeatTimeoutMs / 1_000),
      modelCallsRepeatedAfterCrash: verification.modelCallsRepeatedAfterCrash,
      recoverySeconds,
      killedCalls,
      heartbeatTimeoutMs,
      retryInitialIntervalMs,
      modelLatencyMs,
      workers: workers.length,
      store: 'embedded PGlite (served to the worker processes)',
    }
  } finally {
    await teardown.run()
  }
}
