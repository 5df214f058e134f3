import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { Client, Connection } from '@temporalio/client'
import cliProgress from 'cli-progress'
import type pg from 'pg'
import { openDatabase } from '../../historian/adapters/postgres/database'
import { startEmbeddedPostgres } from '../embeddedPostgres/embeddedServer'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import { defaultProjections } from '../../projections/defaultProjections'
import { rebuildAndCompare } from '../../projections/rebuild'
import { tenantSummary, type TenantSummary } from '../../projections/taskSummary/query'
import type { AgentPipelineResult } from '../../workflows/api'
import { loadConfig } from '../../cli/runtime/config'
import { demoIntegrityKey } from './demoIntegrityKey'
import { demoSigningKeys } from './demoSigningKeys'
import { signingKeyDirFromEnv } from '../../cli/runtime/signingKeyConfig'
import { demoKek } from './demoKek'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import { pipelineChildEnv, preparePipelineRun } from '../supervisor/pipelineChildEnv'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { countTaskEvents, headPosition, waitForProjections } from '../../cli/runtime/projectionCatchUp'
import { findLocalLlm } from '../../cli/runtime/localLlm'
import { resolveLocalLlm } from '../../cli/runtime/localLlmServer'
import { killMidModelCall } from './recoveryProbe'
import { SupervisedProcess } from '../supervisor/supervisedProcess'
import { Teardown } from '../supervisor/teardown'
import { resolveTemporal } from '../../cli/runtime/temporalServer'
import { verifyRun, type RunVerification } from '../../cli/runtime/verifyRun'
import { demoScenario, type DemoScenario } from './demoScenario'
import { parseWholeNumber } from '../../cli/commands/lag'

/** What `annalist demo --summary-json` writes. */
export interface DemoSummary {
  readonly runTag: string
  readonly tenants: number
  readonly tasksStarted: number
  readonly tasksCompleted: number
  readonly tasksFailed: number
  readonly eventsAppended: number
  readonly duplicateOutcomes: number
  readonly duplicateSideEffects: number
  readonly modelCalls: number
  readonly modelCallsRepeatedAfterCrash: number
  readonly workerCrashesInjected: number
  readonly workerCrashesBySignal: Record<string, number>
  readonly recoverySeconds: readonly number[]
  readonly auditMatchesRebuild: boolean
  /** True when every demo task's hash chain verifies intact (historian/integrity/verifyChain.ts). */
  readonly chainsIntact: boolean
  readonly rebuildDifferences: readonly string[]
  readonly wallSeconds: number
}

const say = (line: string) => console.log(line)

/** `annalist demo`: the whole system on one machine, with crashes injected, then the proof that nothing was lost or repeated. */
export async function demoCommand(options: { tenants?: string; tasks?: string; models: string; summaryJson?: string }): Promise<void> {
  if (options.models !== 'scripted' && options.models !== 'local') throw new RangeError(`--models must be scripted or local, got ${JSON.stringify(options.models)}`)
  const local = options.models === 'local'
  // A real model answers one request at a time on this kind of machine: a smaller default workload keeps the demo short.
  const tenantCount = parseWholeNumber(options.tenants ?? (local ? '2' : '3'), '--tenants', 1, 10)
  const tasksPerTenant = parseWholeNumber(options.tasks ?? (local ? '2' : '5'), '--tasks', 1, 50)
  const config = loadConfig()
  const started = Date.now()
  const runTag = `demo${started.toString(36)}`
  const runDir = path.join(config.dataDir, 'runs', runTag)
  mkdirSync(runDir, { recursive: true, mode: 0o700 }) // a data directory it creates is private, like the key files in it
  const scenario = demoScenario(runTag, tenantCount, tasksPerTenant)
  const teardown = new Teardown()
  say(`Annalist demo ${runTag}: ${tenantCount} tenants x ${tasksPerTenant} tasks, logs in ${runDir}`)
  try {
    const temporal = await resolveTemporal({ allowBuild: true, dbFilename: path.join(runDir, 'temporal.sqlite'), onProgress: (line) => say(`  temporal: ${line}`) })
    teardown.add(() => temporal.stop())
    say(`  temporal: ${temporal.source === 'address' ? 'cluster' : 'dev server'} at ${temporal.address}`)

    let databaseUrl = config.databaseUrl
    if (!databaseUrl) {
      const embedded = await startEmbeddedPostgres({ dataDir: config.pgliteDataDir })
      teardown.add(() => embedded.close())
      databaseUrl = embedded.url
      say(`  database: embedded PGlite in ${config.pgliteDataDir}, served to the worker and projector at ${embedded.url.replace(/:[^:@/]*@/, ':***@')}`)
    } else {
      say('  database: PostgreSQL at DATABASE_URL')
    }
    const database = await openDatabase({ url: databaseUrl })
    teardown.add(() => database.close())
    const store = new PostgresEventStore(database)
    teardown.add(() => store.close())
    let keyRing = config.integrityKeyRing
    const integrityEnv: NodeJS.ProcessEnv = {}
    if (!keyRing) {
      const demoKey = demoIntegrityKey(config.dataDir)
      keyRing = demoKey.keyRing
      integrityEnv.ANNALIST_INTEGRITY_KEY_FILE = demoKey.path
      say(`  integrity: no key configured, so the hash chains use ${demoKey.created ? 'a new random key written to' : 'the key in'} ${demoKey.path} (mode 0600)`)
    }
    let signingKeyDir = signingKeyDirFromEnv()
    if (signingKeyDir === undefined) {
      const demoKeys = await demoSigningKeys(config.dataDir)
      signingKeyDir = demoKeys.directory
      say(`  evidence signing: no ANNALIST_SIGNING_KEY_DIR configured, so evidence is signed with ${demoKeys.created ? 'a new Ed25519 key made in' : 'the keys in'} ${demoKeys.directory} (mode 0700)`)
    }
    if (!config.kek) {
      const kek = demoKek(config.dataDir)
      integrityEnv.ANNALIST_KEK_FILE = kek.path
      say(`  encryption: no key-encryption key configured, so tenant keys are wrapped by ${kek.created ? 'a new random KEK written to' : 'the KEK in'} ${kek.path} (mode 0600)`)
    }
    const historian = new Historian(store, { keyRing })

    const run = preparePipelineRun(runDir, `annalist-${runTag}`)
    const childEnv = {
      ...pipelineChildEnv({
        ...run,
        databaseUrl,
        temporalAddress: temporal.address,
        temporalNamespace: temporal.namespace,
        modelLatencyMs: 250,
        modelTimeoutMs: local ? LOCAL_MODEL_TIMEOUT_MS : 1_500,
        faults: scenario.faults,
        integrity: integrityEnv,
      }),
      ...(local ? await localModelEnv(teardown) : {}),
    }
    const worker = new SupervisedProcess('worker', ['worker'], childEnv, path.join(runDir, 'worker.log'))
    const projector = new SupervisedProcess('projector', ['projector'], childEnv, path.join(runDir, 'projector.log'))
    teardown.add(() => worker.stop())
    teardown.add(() => projector.stop())
    worker.start()
    projector.start()
    say(`  worker and projector started (pids ${worker.pid}, ${projector.pid}); injected faults: ${scenario.faults.rules.length} rules + 1 external SIGKILL`)

    const connection = await Connection.connect({ address: temporal.address })
    teardown.add(() => connection.close())
    const client = new Client({ connection, namespace: temporal.namespace })
    const results = await runTasks(client, scenario, run.taskQueue, worker, run.modelLedgerPath, store, database.pool)

    say('  all pipelines terminal; waiting for the projector to catch up')
    const lastPosition = await headPosition(database.pool)
    await waitForProjections(database.pool, lastPosition, 120_000)
    await projector.stop()
    const comparison = await rebuildAndCompare(store, database.pool, defaultProjections())
    const verification = await verifyRun({ historian, pool: database.pool, tasks: scenario.tasks, ledger: readModelLedger(run.modelLedgerPath), keyRing })
    const summaries = await Promise.all(
      scenario.tenants.map((tenantId) =>
        tenantSummary(database.pool, tenantId, { taskIds: scenario.tasks.filter((task) => task.tenantId === tenantId).map((task) => task.taskId) }),
      ),
    )
    const summary = buildSummary(runTag, scenario, results.outcomes, verification, worker, results.recoverySeconds, comparison, started)
    printReport(summary, summaries, verification)
    if (options.summaryJson) {
      writeFileSync(options.summaryJson, `${JSON.stringify(summary, null, 2)}\n`)
      say(`summary written to ${options.summaryJson}`)
    }
    say(`\nNext: npx annalist audit ${scenario.tenants[0]} ${scenario.tasks[0]!.taskId}    (the audit trail of one task)`)
    const keyFile = integrityEnv.ANNALIST_INTEGRITY_KEY_FILE
    const shownKeyFile = keyFile && shownPath(keyFile)
    const keyHint = shownKeyFile ? `ANNALIST_INTEGRITY_KEY_FILE=${shownKeyFile} ` : ''
    say(`      ${keyHint}npx annalist verify --tenant ${scenario.tenants[0]}    (check that nobody altered the tenant's streams)`)
    say(`      ANNALIST_SIGNING_KEY_DIR=${shownPath(signingKeyDir)} npx annalist keys public    (the public keys that verify signed evidence)`)
  } finally {
    await teardown.run()
  }
}

/** A path as short as a hint can show it: relative to the working directory when it is below it. */
function shownPath(file: string): string {
  const relative = path.relative(process.cwd(), file)
  return relative.startsWith('..') ? file : relative
}

/** A real model answers one request at a time here, so a call may wait behind the others' before its own starts. */
const LOCAL_MODEL_TIMEOUT_MS = 180_000

/**
 * The workers' model settings for `--models local`: the inference server at ANNALIST_LLM_BASE_URL, or the local
 * llama.cpp server (set up first if it is not installed: that compiles llama.cpp, which the setup announces before it
 * starts). The scripted model's faults do not apply to a real model; the tool faults and the SIGKILLs still do.
 */
async function localModelEnv(teardown: Teardown): Promise<NodeJS.ProcessEnv> {
  if (!process.env.ANNALIST_LLM_BASE_URL?.trim() && !findLocalLlm()) {
    say('  models: no local inference server installed and ANNALIST_LLM_BASE_URL is not set, so setting one up now (Ctrl-C to stop)')
  }
  const server = await resolveLocalLlm({ allowSetup: true, onProgress: (line) => say(`  models: ${line}`) })
  teardown.add(() => server.stop())
  say(`  models: real model ${server.modelId} at ${server.baseURL} for every role; the worker probes its structured-output dialect`)
  return {
    ANNALIST_MODEL_PROVIDER: 'openai-compatible',
    ANNALIST_OPENAI_BASE_URL: server.baseURL,
    ANNALIST_MODEL_ROUTING: server.modelId,
    ANNALIST_MODEL_PLANNING: server.modelId,
    ANNALIST_MODEL_SYNTHESIS: server.modelId,
  }
}

interface TaskRunResults {
  readonly outcomes: readonly AgentPipelineResult[]
  readonly recoverySeconds: readonly number[]
}

/** Starts every task, shows live progress, SIGKILLs the worker once mid-synthesis, and waits for every pipeline to end. */
async function runTasks(
  client: Client,
  scenario: DemoScenario,
  taskQueue: string,
  worker: SupervisedProcess,
  ledgerPath: string,
  store: PostgresEventStore,
  pool: pg.Pool,
): Promise<TaskRunResults> {
  const tuning = { heartbeatTimeoutMs: 2_000, retryInitialIntervalMs: 200 }
  const handles = await Promise.all(
    scenario.tasks.map((task) => startPipeline(client, { tenantId: task.tenantId, taskId: task.taskId, input: task.input, requestedBy: 'demo', tuning }, taskQueue)),
  )
  const bars = new cliProgress.MultiBar(
    { format: '  {tenant} [{bar}] {value}/{total} ended  {failed} failed', hideCursor: true, clearOnComplete: false, noTTYOutput: true, notTTYSchedule: 2_000, barsize: 24 },
    cliProgress.Presets.shades_classic,
  )
  const perTenant = new Map(scenario.tenants.map((tenant) => [tenant, bars.create(scenario.tasks.filter((task) => task.tenantId === tenant).length, 0, { tenant: tenant.padEnd(10), failed: 0 })]))
  const status = bars.create(1, 0, {}, { format: '  events {events}  worker crashes {crashes}  restarts {restarts}' })
  const failedCount = new Map<string, number>()
  const outcomes: AgentPipelineResult[] = []
  let events = 0
  const recoverySeconds: number[] = []
  const watcher = setInterval(() => {
    void countTaskEvents(pool, scenario.tasks).then((count) => (events = count))
    status.update(0, { events, crashes: worker.unplannedExits.length, restarts: worker.unplannedExits.length })
  }, 500)
  const killer = killDuringSynthesis(scenario, worker, ledgerPath, store, (seconds) => recoverySeconds.push(seconds))
  try {
    await Promise.all(
      handles.map(async (handle, index) => {
        const task = scenario.tasks[index]!
        const outcome = await handle.result()
        outcomes.push(outcome)
        if (outcome.status === 'failed') failedCount.set(task.tenantId, (failedCount.get(task.tenantId) ?? 0) + 1)
        perTenant.get(task.tenantId)!.increment(1, { failed: failedCount.get(task.tenantId) ?? 0 })
      }),
    )
  } finally {
    clearInterval(watcher)
    killer.cancel()
    status.update(0, { events: await countTaskEvents(pool, scenario.tasks), crashes: worker.unplannedExits.length, restarts: worker.unplannedExits.length })
    bars.stop()
  }
  await killer.done
  return { outcomes, recoverySeconds }
}

/**
 * Watches the model ledger and SIGKILLs the worker from outside the moment the victim task's synthesis call starts,
 * then measures how long the pipeline takes to record its next event (recovery time).
 */
function killDuringSynthesis(scenario: DemoScenario, worker: SupervisedProcess, ledgerPath: string, store: PostgresEventStore, onRecovered: (seconds: number) => void) {
  let cancelled = false
  const done = killMidModelCall({
    ledgerPath,
    store,
    task: scenario.externalKillVictim,
    role: 'synthesis',
    kill: () => worker.kill('SIGKILL') !== undefined,
    cancelled: () => cancelled,
  }).then((measured) => {
    if (measured) onRecovered(measured.recoverySeconds)
  })
  return { done, cancel: () => (cancelled = true) }
}

function buildSummary(
  runTag: string,
  scenario: DemoScenario,
  outcomes: readonly AgentPipelineResult[],
  verification: RunVerification,
  worker: SupervisedProcess,
  recoverySeconds: readonly number[],
  comparison: { matches: boolean; differences: readonly string[] },
  started: number,
): DemoSummary {
  const bySignal: Record<string, number> = {}
  for (const exit of worker.unplannedExits) bySignal[exit.signal ?? `exit ${exit.code}`] = (bySignal[exit.signal ?? `exit ${exit.code}`] ?? 0) + 1
  return {
    runTag,
    tenants: scenario.tenants.length,
    tasksStarted: scenario.tasks.length,
    tasksCompleted: outcomes.filter((outcome) => outcome.status === 'completed').length,
    tasksFailed: outcomes.filter((outcome) => outcome.status === 'failed').length,
    eventsAppended: verification.eventsAppended,
    duplicateOutcomes: verification.duplicateOutcomes,
    duplicateSideEffects: verification.duplicateSideEffects,
    modelCalls: verification.modelCalls,
    modelCallsRepeatedAfterCrash: verification.modelCallsRepeatedAfterCrash,
    workerCrashesInjected: worker.unplannedExits.filter((exit) => exit.signal === 'SIGKILL').length,
    workerCrashesBySignal: bySignal,
    recoverySeconds,
    auditMatchesRebuild: comparison.matches,
    chainsIntact: verification.chainsIntact,
    rebuildDifferences: comparison.differences.slice(0, 20),
    wallSeconds: Math.round((Date.now() - started) / 100) / 10,
  }
}

function printReport(summary: DemoSummary, tenants: readonly TenantSummary[], verification: RunVerification): void {
  say('\nPer-tenant audit summary of this run (from the task_summary read model)')
  // Tokens and cost are what providers reported (failed calls included, their part shown apart); calls that reported no
  // usage are counted, with their estimate outside the totals.
  const columns = ['tenant', 'tasks', 'done', 'failed', 'tools ok', 'tools failed', 'failed model calls', 'tokens', 'cost USD', 'of it failed calls', 'calls w/o usage', 'est. USD']
  say(`  ${columns.map((column, i) => (i === 0 ? column.padEnd(10) : column.padStart(column.length + 1))).join(' ')}`)
  for (const tenant of tenants) {
    const cells = [
      tenant.tasks,
      tenant.byStatus.completed,
      tenant.byStatus.failed,
      tenant.toolCallsSucceeded,
      tenant.toolCallsFailed,
      tenant.modelAttemptsFailed,
      tenant.totalTokens,
      tenant.totalCostUsd.toFixed(6),
      tenant.failedCallCostUsd.toFixed(6),
      tenant.callsWithoutReportedUsage,
      tenant.estimatedUnreportedCostUsd.toFixed(6),
    ]
    say(`  ${tenant.tenantId.padEnd(10)} ${cells.map((cell, i) => String(cell).padStart(columns[i + 1]!.length + 1)).join(' ')}`)
  }
  say('\nRecovery')
  say(`  worker crashes injected (SIGKILL): ${summary.workerCrashesInjected}   recovery after the external SIGKILL: ${summary.recoverySeconds.map((s) => `${s.toFixed(2)} s`).join(', ') || 'n/a'}`)
  say(`  tasks: ${summary.tasksStarted} started, ${summary.tasksCompleted} completed, ${summary.tasksFailed} failed, ${verification.tasksWithoutTerminalEvent} without a terminal event`)
  say(`  events appended: ${summary.eventsAppended}   outcomes recorded twice: ${summary.duplicateOutcomes}   duplicate side effects: ${summary.duplicateSideEffects}`)
  say(`  model calls: ${summary.modelCalls}   recorded model calls made again after a crash: ${summary.modelCallsRepeatedAfterCrash}`)
  say(`  read models equal a rebuild from position 0: ${summary.auditMatchesRebuild ? 'yes' : `NO (${summary.rebuildDifferences.length} differences)`}`)
  const firstBreak = verification.brokenChains[0]
  say(`  hash chains of every task intact: ${summary.chainsIntact ? 'yes' : `NO (${verification.brokenChains.length} broken; first: ${firstBreak?.streamName} revision ${firstBreak?.revision}: ${firstBreak?.kind})`}`)
}
