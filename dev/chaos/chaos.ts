import { randomInt } from 'node:crypto'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { Client, Connection } from '@temporalio/client'
import { openDatabase } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { checkChaosInvariants, invariantsHold, type ChaosCheck, type ChaosInvariants } from './chaosInvariants'
import { CHAOS_FAULT_KINDS, chaosPlan, parseFaultKinds, type ChaosFaultKind, type ChaosPlan } from './chaosPlan'
import { modelFaultsHit } from './faultTally'
import { runFaultSchedule, type InjectedFault } from './faultInjector'
import { startPrivatePostgresCluster } from './privatePostgresCluster'
import { startEmbeddedDatabaseProcess, startRestartableTemporal, type RestartableDatabase } from './restartableServers'
import { notTerminal } from './terminalWatch'
import { loadConfig } from '../../cli/runtime/config'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import { pipelineChildEnv, preparePipelineRun } from '../supervisor/pipelineChildEnv'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { headPosition, waitForProjections } from '../../cli/runtime/projectionCatchUp'
import { reconcileTasks } from '../../cli/runtime/reconcileTasks'
import { SupervisedProcess } from '../supervisor/supervisedProcess'
import { Teardown } from '../supervisor/teardown'
import { ensureTemporalBinary } from '../../cli/runtime/temporalBinary'
import { parseWholeNumber } from '../../cli/commands/lag'

/** Options of `annalist chaos`. */
export interface ChaosOptions {
  readonly tenants: string
  readonly tasks: string
  readonly seed?: string
  readonly faults: string
  readonly postgresServer?: boolean
  readonly deadline: string
  readonly json?: string
}

/** What `annalist chaos --json` writes: the invariants, the faults injected by kind, the seed and counts. */
export interface ChaosSummary extends ChaosInvariants {
  readonly seed: number
  readonly faultsInjected: Record<ChaosFaultKind, number>
  readonly counts: {
    readonly tenants: number
    readonly tasks: number
    readonly tasksCompleted: number
    readonly tasksFailed: number
    readonly events: number
    readonly modelCalls: number
    readonly externalFaultsScheduled: number
    readonly workerRestarts: number
    readonly projectorRestarts: number
    /** Reconcile findings other than lost or duplicate events (events without an activity, a workflow missing). */
    readonly otherReconcileFindings: number
    readonly wallSeconds: number
  }
}

/**
 * Pipeline timings: a short heartbeat timeout, so a killed worker's activity moves on quickly, and retries 1, 2, 4 s
 * apart, so a model step's four attempts outlast a database restart (a few seconds) instead of failing the task.
 */
const TUNING = { heartbeatTimeoutMs: 2_000, retryInitialIntervalMs: 1_000 }
const MODEL_LATENCY_MS = 400
const MODEL_TIMEOUT_MS = 1_500
const WORKERS = 2
const PROJECTOR_BATCH_SIZE = 10

const say = (line: string) => console.log(line)

/**
 * `annalist chaos`: runs many pipelines across tenants on a Temporal dev server and database of its own, injects faults
 * at seeded moments (workers and the projector SIGKILLed mid-work, the database and Temporal killed and restarted, model
 * timeouts and malformed tool answers), then checks and prints the invariants. Exit code 2 when one fails.
 */
export async function chaosCommand(options: ChaosOptions): Promise<void> {
  const tenants = parseWholeNumber(options.tenants, '--tenants', 1, 10)
  const tasksPerTenant = parseWholeNumber(options.tasks, '--tasks', 1, 200)
  const seed = options.seed === undefined ? randomInt(1, 2 ** 31) : parseWholeNumber(options.seed, '--seed', 0, 2 ** 32 - 1)
  const deadlineSeconds = parseWholeNumber(options.deadline, '--deadline', 10, 86_400)
  const kinds = parseFaultKinds(options.faults)
  const summary = await runChaosCampaign({ tenants, tasksPerTenant, seed, kinds, postgresServer: options.postgresServer === true, deadlineSeconds })
  if (options.json) {
    writeFileSync(options.json, `${JSON.stringify(summary, null, 2)}\n`)
    say(`summary written to ${options.json}`)
  }
  if (!invariantsHold(summary)) process.exitCode = 2
}

/** Runs one campaign end to end and returns its summary (printed as it goes). */
export async function runChaosCampaign(options: {
  tenants: number
  tasksPerTenant: number
  seed: number
  kinds: ReadonlySet<ChaosFaultKind>
  postgresServer: boolean
  deadlineSeconds: number
}): Promise<ChaosSummary> {
  const config = loadConfig()
  const started = Date.now()
  const runTag = `chaos${options.seed}`
  const runDir = path.join(config.dataDir, 'chaos', `${runTag}-${started.toString(36)}`)
  mkdirSync(runDir, { recursive: true })
  const plan = chaosPlan({ seed: options.seed, runTag, tenants: options.tenants, tasksPerTenant: options.tasksPerTenant, kinds: options.kinds })
  const kindsText = CHAOS_FAULT_KINDS.filter((kind) => options.kinds.has(kind)).join(',') || 'none'
  say(`Annalist chaos, seed ${options.seed}: ${options.tenants} tenants x ${options.tasksPerTenant} tasks, faults ${kindsText}`)
  say(`  repeat with: annalist chaos --seed ${options.seed} --tenants ${options.tenants} --tasks ${options.tasksPerTenant} --faults ${kindsText}${options.postgresServer ? ' --postgres-server' : ''}`)
  say(`  logs and data in ${runDir}`)
  const teardown = new Teardown()
  let keepData = true
  try {
    const binaryPath = await ensureTemporalBinary({ allowBuild: true, onProgress: (line) => say(`  temporal: ${line}`) })
    const temporal = await startRestartableTemporal({ binaryPath, dbFilename: path.join(runDir, 'temporal.sqlite'), logFile: path.join(runDir, 'temporal.log') })
    teardown.add(() => temporal.stop())
    say(`  temporal: private dev server at ${temporal.address}, persisted in temporal.sqlite`)

    const postgres: RestartableDatabase = options.postgresServer
      ? await startPrivatePostgresCluster()
      : await startEmbeddedDatabaseProcess({ dataDir: path.join(runDir, 'pgdata'), logPath: path.join(runDir, 'embedded-postgres.log') })
    teardown.add(() => postgres.stop())
    say(`  database: ${options.postgresServer ? 'private PostgreSQL cluster' : 'embedded PGlite served by its own process'} at ${postgres.address}`)
    const database = await openDatabase({ url: postgres.url })
    teardown.add(() => database.close())
    const store = new PostgresEventStore(database)
    teardown.add(() => store.close())
    const integrityKey = generateIntegrityKey()
    const keyRing = TenantKeyRing.fromText(integrityKey)
    const historian = new Historian(store, { keyRing })

    const run = preparePipelineRun(runDir, `annalist-${runTag}`)
    const childEnv = pipelineChildEnv({
      ...run,
      databaseUrl: postgres.url,
      temporalAddress: temporal.address,
      temporalNamespace: temporal.namespace,
      modelLatencyMs: MODEL_LATENCY_MS,
      modelTimeoutMs: MODEL_TIMEOUT_MS,
      faults: plan.faultPlan,
      integrity: { ANNALIST_INTEGRITY_KEY: integrityKey, ANNALIST_INTEGRITY_KEY_FILE: '' },
    })
    const workers = Array.from({ length: WORKERS }, (_, i) => new SupervisedProcess(`worker${i + 1}`, ['worker'], childEnv, path.join(runDir, `worker${i + 1}.log`)))
    const projector = new SupervisedProcess('projector', ['projector', '--batch-size', String(PROJECTOR_BATCH_SIZE)], childEnv, path.join(runDir, 'projector.log'))
    for (const child of [...workers, projector]) {
      teardown.add(() => child.stop())
      child.start()
    }
    say(`  ${WORKERS} workers and a projector started, supervised (restarted whenever they die)`)

    const connection = await Connection.connect({ address: temporal.address })
    teardown.add(() => connection.close())
    const client = new Client({ connection, namespace: temporal.namespace })
    for (const task of plan.tasks) await startPipeline(client, { ...task, requestedBy: 'chaos', tuning: TUNING }, run.taskQueue)
    say(`  ${plan.tasks.length} pipelines started; ${plan.schedule.length} external faults scheduled, model and tool faults drawn from the seed`)

    const injected: InjectedFault[] = []
    let allEnded = false
    const injector = runFaultSchedule(
      plan.schedule,
      { workers, projector, postgres, temporal, pool: database.pool, ledgerPath: run.modelLedgerPath, modelLatencyMs: MODEL_LATENCY_MS },
      {
        cancelled: () => allEnded,
        onInjected: (fault) => {
          injected.push(fault)
          say(`  fault ${injected.length}/${plan.schedule.length} (${fault.kind}) at model call ${fault.atModelCall}: ${fault.detail}`)
        },
      },
    )
    const pending = await waitUntilTerminal(client, plan, run.modelLedgerPath, injected, started, options.deadlineSeconds * 1_000, () => allEnded)
    allEnded = true
    await injector
    const workflowsNotTerminal = pending.length
    if (workflowsNotTerminal > 0) say(`  deadline passed with ${workflowsNotTerminal} pipelines not terminal, e.g. ${pending.slice(0, 3).map((task) => `${task.tenantId}/${task.taskId}`).join(', ')}`)

    say('  waiting for the projector to catch up')
    await waitForProjections(database.pool, await headPosition(database.pool), 180_000)
    for (const child of [...workers, projector]) await child.stop()
    say('  checking the invariants (event log, outbox, model ledger, Temporal histories, read-model rebuild, hash chains)')
    const check = await checkChaosInvariants({
      historian,
      pool: database.pool,
      keyRing,
      tasks: plan.tasks,
      ledger: readModelLedger(run.modelLedgerPath),
      faultPlan: plan.faultPlan,
      workflowsNotTerminal,
      reconcile: (tasks) => reconcileTasks({ client, store }, tasks),
    })
    const summary = buildSummary(plan, check, injected, workers, projector, started)
    printSummary(summary, check)
    keepData = !invariantsHold(summary)
    return summary
  } finally {
    await teardown.run()
    if (keepData) {
      say(`  data kept in ${runDir}`)
    } else {
      for (const bulky of ['pgdata', 'postgres', 'temporal.sqlite', 'workflow-bundle.js']) rmSync(path.join(runDir, bulky), { recursive: true, force: true })
    }
  }
}

/** Polls Temporal until every pipeline is terminal or the deadline passes, printing progress; returns the ones still pending. */
async function waitUntilTerminal(
  client: Client,
  plan: ChaosPlan,
  ledgerPath: string,
  injected: readonly InjectedFault[],
  started: number,
  timeoutMs: number,
  cancelled: () => boolean,
): Promise<ChaosPlan['tasks'][number][]> {
  const deadline = Date.now() + timeoutMs
  let pending = [...plan.tasks]
  let lastPrint = 0
  while (!cancelled()) {
    pending = (await notTerminal(client, pending)).map((ref) => plan.tasks.find((task) => task.tenantId === ref.tenantId && task.taskId === ref.taskId)!)
    if (pending.length === 0 || Date.now() > deadline) break
    if (Date.now() - lastPrint >= 2_000) {
      lastPrint = Date.now()
      const ledger = readModelLedger(ledgerPath)
      const byKind = CHAOS_FAULT_KINDS.filter((kind) => kind !== 'tool')
        .map((kind) => `${kind} ${kind === 'model' ? modelFaultsHit(plan.faultPlan, ledger) : injected.filter((fault) => fault.kind === kind).length}`)
        .join(', ')
      say(`  [${Math.round((Date.now() - started) / 1_000)}s] pipelines ended ${plan.tasks.length - pending.length}/${plan.tasks.length}   model calls ${ledger.length}   faults so far: ${byKind}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  return pending
}

function buildSummary(plan: ChaosPlan, check: ChaosCheck, injected: readonly InjectedFault[], workers: readonly SupervisedProcess[], projector: SupervisedProcess, started: number): ChaosSummary {
  const external = (kind: ChaosFaultKind) => injected.filter((fault) => fault.kind === kind).length
  return {
    seed: plan.seed,
    ...check.invariants,
    faultsInjected: {
      worker: external('worker'),
      projector: external('projector'),
      postgres: external('postgres'),
      temporal: external('temporal'),
      model: check.planFaults.model,
      tool: check.planFaults.tool,
    },
    counts: {
      tenants: plan.tenants.length,
      tasks: plan.tasks.length,
      tasksCompleted: check.tasksCompleted,
      tasksFailed: check.tasksFailed,
      events: check.verification.eventsAppended,
      modelCalls: check.verification.modelCalls,
      externalFaultsScheduled: plan.schedule.length,
      workerRestarts: workers.reduce((sum, worker) => sum + worker.unplannedExits.length, 0),
      projectorRestarts: projector.unplannedExits.length,
      otherReconcileFindings: check.otherFindings.length,
      wallSeconds: Math.round((Date.now() - started) / 100) / 10,
    },
  }
}

function printSummary(summary: ChaosSummary, check: ChaosCheck): void {
  const mark = (ok: boolean) => (ok ? 'ok  ' : 'FAIL')
  const { counts } = summary
  say(`\nChaos campaign, seed ${summary.seed}: ${counts.tasks} pipelines (${counts.tasksCompleted} completed, ${counts.tasksFailed} failed), ${counts.events} events, ${counts.modelCalls} model calls, ${counts.wallSeconds} s`)
  say(`  faults injected: ${CHAOS_FAULT_KINDS.map((kind) => `${kind} ${summary.faultsInjected[kind]}`).join(', ')}   (restarts: workers ${counts.workerRestarts}, projector ${counts.projectorRestarts})`)
  say('Invariants')
  say(`  ${mark(summary.workflowsNotTerminal === 0)} workflowsNotTerminal    ${summary.workflowsNotTerminal}`)
  say(`  ${mark(summary.lostEvents === 0)} lostEvents              ${summary.lostEvents}   (reconcile: ${check.reconcile.activitiesChecked} activities in ${check.reconcile.workflowRunsChecked} runs against ${check.reconcile.eventsChecked} events)`)
  say(`  ${mark(summary.duplicateEvents === 0)} duplicateEvents         ${summary.duplicateEvents}`)
  say(`  ${mark(summary.duplicateSideEffects === 0)} duplicateSideEffects    ${summary.duplicateSideEffects}`)
  say(`  ${mark(summary.modelCallsRepeated === 0)} modelCallsRepeated      ${summary.modelCallsRepeated}`)
  say(`  ${mark(summary.readModelsMatchRebuild)} readModelsMatchRebuild  ${summary.readModelsMatchRebuild ? 'yes' : `NO: ${check.rebuildDifferences.slice(0, 3).join('; ')}`}`)
  const firstBreak = check.verification.brokenChains[0]
  say(`  ${mark(summary.chainsIntact)} chainsIntact            ${summary.chainsIntact ? 'yes' : `NO: ${firstBreak?.streamName} revision ${firstBreak?.revision}: ${firstBreak?.kind}`}`)
  for (const finding of check.reconcile.findings.slice(0, 10)) say(`  reconcile: ${finding.kind} ${finding.tenantId}/${finding.taskId} ${finding.activityId ?? ''}: ${finding.detail}`)
  for (const call of check.verification.repeatedModelCalls.slice(0, 5)) say(`  repeated model call: ${call.tenantId}/${call.taskId} ${call.activityId} attempt ${call.attempt} (pid ${call.pid})`)
  say(invariantsHold(summary) ? 'Every invariant holds.' : 'An invariant FAILED (exit code 2).')
}
