import type pg from 'pg'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import { headPosition, lowestCheckpoint } from '../../cli/runtime/projectionCatchUp'
import type { SupervisedProcess } from '../supervisor/supervisedProcess'
import type { ExternalFaultKind, ScheduledFault } from './chaosPlan'
import type { RestartableServer } from './restartableServers'

/** What the injector can hit. A kind whose target is absent is skipped (and so never counted). */
export interface FaultTargets {
  readonly workers: readonly SupervisedProcess[]
  readonly projector: SupervisedProcess
  readonly postgres: RestartableServer
  readonly temporal: RestartableServer
  /** The campaign's own pool, to see whether the projector has work in hand. */
  readonly pool: pg.Pool
  readonly ledgerPath: string
  /** The scripted model's think time: a ledger entry younger than half of it is a call still in flight. */
  readonly modelLatencyMs: number
}

/** One fault as it was injected. */
export interface InjectedFault {
  readonly kind: ExternalFaultKind
  readonly at: number
  readonly atModelCall: number
  /** What exactly was hit, e.g. `worker 1234 in the synthesis call of acme/chaos-7-3 attempt 1`. */
  readonly detail: string
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Injects the scheduled external faults one after another, each once the model ledger holds its `atModelCall` calls, and
 * waits for each to be absorbed (a restarted server answering) before the next. Returns the faults injected; stops
 * early when `cancelled()` turns true (every pipeline ended before the rest of the schedule came due).
 */
export async function runFaultSchedule(
  schedule: readonly ScheduledFault[],
  targets: FaultTargets,
  options: { cancelled: () => boolean; onInjected: (fault: InjectedFault) => void },
): Promise<InjectedFault[]> {
  const injected: InjectedFault[] = []
  for (const fault of schedule) {
    while (!options.cancelled() && readModelLedger(targets.ledgerPath).length < fault.atModelCall) await pause(20)
    if (options.cancelled()) break
    const detail = await inject(fault.kind, targets, options.cancelled)
    const done = { kind: fault.kind, at: Date.now(), atModelCall: fault.atModelCall, detail }
    injected.push(done)
    options.onInjected(done)
  }
  return injected
}

async function inject(kind: ExternalFaultKind, targets: FaultTargets, cancelled: () => boolean): Promise<string> {
  switch (kind) {
    case 'worker':
      return killWorkerMidCall(targets, cancelled)
    case 'projector':
      return killProjectorMidBatch(targets, cancelled)
    case 'postgres': {
      const started = Date.now()
      await targets.postgres.restart()
      return `PostgreSQL at ${targets.postgres.address} crashed (embedded: SIGKILL; private cluster: immediate stop) and serving again after ${((Date.now() - started) / 1_000).toFixed(1)} s`
    }
    case 'temporal': {
      const started = Date.now()
      await targets.temporal.restart()
      return `Temporal dev server at ${targets.temporal.address} SIGKILLed and serving again after ${((Date.now() - started) / 1_000).toFixed(1)} s`
    }
  }
}

/** SIGKILLs the worker that has just started a model call (found by its pid in the ledger); after 30 s without one, any live worker. */
async function killWorkerMidCall(targets: FaultTargets, cancelled: () => boolean): Promise<string> {
  const deadline = Date.now() + 30_000
  while (!cancelled() && Date.now() < deadline) {
    const ledger = readModelLedger(targets.ledgerPath)
    const newest = ledger[ledger.length - 1]
    const worker = newest && targets.workers.find((candidate) => candidate.pid === newest.pid)
    if (newest && worker && Date.now() - newest.ts < targets.modelLatencyMs / 2) {
      worker.kill('SIGKILL')
      return `worker ${newest.pid} SIGKILLed in the ${newest.role} call of ${newest.tenantId}/${newest.taskId} (attempt ${newest.attempt})`
    }
    await pause(5)
  }
  const live = targets.workers.find((worker) => worker.pid !== undefined)
  const pid = live?.kill('SIGKILL')
  return `worker ${pid ?? '(none running)'} SIGKILLed between model calls`
}

/** SIGKILLs the projector while it has events to project (the log's head is past its slowest checkpoint); after 10 s, regardless. */
async function killProjectorMidBatch(targets: FaultTargets, cancelled: () => boolean): Promise<string> {
  const deadline = Date.now() + 10_000
  while (!cancelled() && Date.now() < deadline) {
    const behind = await Promise.all([headPosition(targets.pool), lowestCheckpoint(targets.pool)])
      .then(([head, checkpoint]) => head - checkpoint)
      .catch(() => 0n)
    if (behind > 0n && targets.projector.pid !== undefined) {
      const pid = targets.projector.kill('SIGKILL')
      return `projector ${pid} SIGKILLed ${behind} events behind the head`
    }
    await pause(10)
  }
  const pid = targets.projector.kill('SIGKILL')
  return `projector ${pid ?? '(not running)'} SIGKILLed while caught up`
}
