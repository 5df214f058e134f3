import type pg from 'pg'
import { isModelFailedEventType, isModelInvokedEventType, isTerminalTaskEventType } from '../../historian/events'
import type { Historian, StoredEvent } from '../../historian/historian'
import type { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { verifyChain, type ChainBreak } from '../../historian/integrity/verifyChain'
import { duplicateOutcomeCount } from '../../historian/reconcile/duplicateFindings'
import { eventFactOf } from '../../historian/reconcile/eventFacts'
import type { TaskRef } from '../../workflows/api'
import type { LedgerCall } from './modelLedger'

/** The crash-safety invariants of a set of tasks, checked from the event log, the outbox and the model ledger. */
export interface RunVerification {
  readonly eventsAppended: number
  /**
   * Outcome events recorded beyond one outcome per activity of a workflow run, across the tasks' streams: an activity
   * that ran again after its outcome was stored and recorded it a second time under another event ID (the store's
   * unique index already refuses a second copy of one event ID). Failed-attempt records and operators' records
   * (RedriveRequested) are not outcomes. See duplicateOutcomeCount.
   */
  readonly duplicateOutcomes: number
  /**
   * Model calls made again after they were on record: a call that started after its activity's outcome was recorded,
   * or after a failed call with the same call index of the same activity and run was (a paid call made twice).
   */
  readonly modelCallsRepeatedAfterCrash: number
  readonly repeatedModelCalls: readonly LedgerCall[]
  /** Outbox rows beyond one per side-effecting tool call and kind (its notification, and at most one retraction of it). */
  readonly duplicateSideEffects: number
  /** Tasks whose stream has no terminal event (AgentTaskCompleted, AgentTaskFailed or AgentTaskCancelled). */
  readonly tasksWithoutTerminalEvent: number
  readonly modelCalls: number
  /** True when every task's hash chain verifies intact with its tenant's key. */
  readonly chainsIntact: boolean
  /** The first broken link of each task whose chain does not verify. */
  readonly brokenChains: readonly ChainBreak[]
}

/** A model step's outcome: its usable reply, or the failed call it gave up on. */
function isModelOutcome(stored: StoredEvent): boolean {
  if (isModelInvokedEventType(stored.event.type)) return true
  return isModelFailedEventType(stored.event.type) && 'willRetry' in stored.event.data && stored.event.data.willRetry === false
}

const activityKey = (tenantId: string, taskId: string, activityId: string) => `${tenantId}/${taskId}/${activityId}`

/**
 * Checks the promises Annalist makes after crashes: no outcome recorded twice, no repeated recorded model call, no duplicate side
 * effect, every task ended, every task's hash chain intact. A model call counts as repeated when it started after its
 * activity's outcome was recorded.
 */
export async function verifyRun(options: {
  historian: Historian
  pool: pg.Pool
  tasks: readonly TaskRef[]
  ledger: readonly LedgerCall[]
  keyRing: TenantKeyRing
}): Promise<RunVerification> {
  const runOfIdempotencyKey = new Map<string, string>()
  const outcomeRecordedAt = new Map<string, number>()
  /** When each failed model call was recorded, by task, run, activity and call index. */
  const failedCallRecordedAt = new Map<string, number>()
  let eventsAppended = 0
  let duplicateOutcomes = 0
  let tasksWithoutTerminalEvent = 0
  for (const task of options.tasks) {
    const stream = await options.historian.readTask(task.tenantId, task.taskId)
    eventsAppended += stream.events.length
    duplicateOutcomes += duplicateOutcomeCount(
      stream.events.map((stored) => eventFactOf({ ...stored, type: stored.event.type, data: stored.event.data, metadata: stored.event.metadata })),
    )
    for (const stored of stream.events) {
      const key = (stored.event.data as { idempotencyKey?: unknown }).idempotencyKey
      if (typeof key === 'string') runOfIdempotencyKey.set(key, stored.event.metadata.runId)
      if (isModelOutcome(stored)) {
        const { runId, activityId } = stored.event.metadata
        outcomeRecordedAt.set(activityKey(task.tenantId, task.taskId, activityId), stored.recordedAt.getTime())
        // A replay runs the same activity IDs again in a new Temporal run: ledgers that name the run compare within it.
        outcomeRecordedAt.set(activityKey(task.tenantId, task.taskId, `${runId}/${activityId}`), stored.recordedAt.getTime())
      }
      const callIndex = (stored.event.data as { callIndex?: unknown }).callIndex
      if (isModelFailedEventType(stored.event.type) && typeof callIndex === 'number') {
        const { runId, activityId } = stored.event.metadata
        const key = activityKey(task.tenantId, task.taskId, `${runId}/${activityId}#${callIndex}`)
        failedCallRecordedAt.set(key, Math.min(failedCallRecordedAt.get(key) ?? Infinity, stored.recordedAt.getTime()))
      }
    }
    if (!stream.events.some((stored) => isTerminalTaskEventType(stored.event.type))) tasksWithoutTerminalEvent++
  }
  const brokenChains: ChainBreak[] = []
  for (const task of options.tasks) {
    const chain = await verifyChain({ store: options.historian.store, keyRing: options.keyRing, tenantId: task.tenantId, taskId: task.taskId })
    if (chain.firstBreak) brokenChains.push(chain.firstBreak)
  }

  const taskKeys = new Set(options.tasks.map((task) => `${task.tenantId}/${task.taskId}`))
  const ledger = options.ledger.filter((call) => taskKeys.has(`${call.tenantId}/${call.taskId}`))
  const repeatedModelCalls = ledger.filter((call) => {
    const recordedAt = outcomeRecordedAt.get(activityKey(call.tenantId, call.taskId, call.runId === undefined ? call.activityId : `${call.runId}/${call.activityId}`))
    if (recordedAt !== undefined && call.ts > recordedAt) return true
    if (call.runId === undefined || call.callIndex === undefined) return false
    const failedAt = failedCallRecordedAt.get(activityKey(call.tenantId, call.taskId, `${call.runId}/${call.activityId}#${call.callIndex}`))
    return failedAt !== undefined && call.ts > failedAt
  })

  // A replay or redrive from `tools` runs a tool call again, for real, under a new key: rows count per tool call per run.
  const outbox = await options.pool.query<{ extra: string }>(
    `select coalesce(sum(copies - 1), 0)::text as extra
       from (select count(*) as copies from tool_outbox
               left join unnest($2::text[], $3::text[]) as runs(idempotency_key, run_id) using (idempotency_key)
              where (tenant_id || '/' || task_id) = any($1::text[])
              group by tenant_id, task_id, tool_call_id, kind, runs.run_id) per_call`,
    [[...taskKeys], [...runOfIdempotencyKey.keys()], [...runOfIdempotencyKey.values()]],
  )
  return {
    eventsAppended,
    duplicateOutcomes,
    modelCallsRepeatedAfterCrash: repeatedModelCalls.length,
    repeatedModelCalls,
    duplicateSideEffects: Number(outbox.rows[0]?.extra ?? 0),
    tasksWithoutTerminalEvent,
    modelCalls: ledger.length,
    chainsIntact: brokenChains.length === 0,
    brokenChains,
  }
}
