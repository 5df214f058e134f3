import type pg from 'pg'
import { MODEL_EVENTS, type AnnalistEvent, type ModelRef, type ModelRole, type ModelUsage, type PipelineStepName, type PromptRef } from '../../historian/events'
import type { StoredEvent } from '../../historian/historian'
import { forgetTaskRows, type Projection, type ProjectionTables } from '../projection'

/** Name of the task summary projection (its checkpoint and dead-letter key). */
export const TASK_SUMMARY_PROJECTION = 'task_summary'

type TaskSummaryTable = 'task_summary'

/** Where a task stands. */
export const TaskStatus = { received: 'received', running: 'running', completed: 'completed', failed: 'failed', cancelled: 'cancelled' } as const
export type TaskStatus = (typeof TaskStatus)[keyof typeof TaskStatus]

/** One distinct model use in a task: which model, in which role, from which prompt template. */
export interface ModelUse {
  readonly role: ModelRole
  readonly provider: string
  readonly modelId: string
  readonly modelVersion: string
  readonly templateId: string
  readonly templateVersion: string
}

/** What one event contributes to its task's summary row. */
interface SummaryDelta {
  /** Absent: the event does not move the task (a compensation, a dead letter, a continue-as-new). */
  status?: TaskStatus
  step?: PipelineStepName
  /** A new run (replay or redrive) re-opens a finished task and clears its failure. */
  reopens?: boolean
  failedStep?: string
  errorCode?: string
  route?: string
  toolCallsSucceeded: number
  toolCallsFailed: number
  modelAttemptsFailed: number
  modelUsed?: ModelUse
  /** Tokens and cost the provider reported, of a successful or a failed call: what the totals add up. */
  tokens: number
  costUsd: number
  /** The reported cost of a failed call (a part of `costUsd`, shown apart). */
  failedCallCostUsd: number
  /** 1 for a call whose usage the provider did not report; its estimate goes to `estimated*`, never to the totals. */
  callsWithoutReportedUsage: number
  estimatedTokens: number
  estimatedCostUsd: number
  startedAt?: string
  finishedAt?: string
}

function modelUse(role: ModelUse['role'], model: ModelRef, prompt: PromptRef): ModelUse {
  // Fixed key order: jsonb compares objects by content, but a stable shape keeps exports readable.
  return {
    role,
    provider: model.provider,
    modelId: model.modelId,
    modelVersion: model.modelVersion,
    templateId: prompt.templateId,
    templateVersion: prompt.templateVersion,
  }
}

const NONE = {
  toolCallsSucceeded: 0,
  toolCallsFailed: 0,
  modelAttemptsFailed: 0,
  tokens: 0,
  costUsd: 0,
  failedCallCostUsd: 0,
  callsWithoutReportedUsage: 0,
  estimatedTokens: 0,
  estimatedCostUsd: 0,
} as const

type UsageDelta = Pick<SummaryDelta, 'tokens' | 'costUsd' | 'failedCallCostUsd' | 'callsWithoutReportedUsage' | 'estimatedTokens' | 'estimatedCostUsd'>

/**
 * What one model call's usage adds, successful or failed. Reported usage goes to the totals (a failed call's cost to
 * `failedCallCostUsd` as well); an unreported call is counted, and its estimate kept apart, so no total mixes a bill
 * with a guess.
 */
export function usageDelta(usage: ModelUsage, failed: boolean): UsageDelta {
  const tokens = usage.inputTokens + usage.outputTokens
  return usage.reported
    ? { ...NONE, tokens, costUsd: usage.costUsd, failedCallCostUsd: failed ? usage.costUsd : 0 }
    : { ...NONE, callsWithoutReportedUsage: 1, estimatedTokens: tokens, estimatedCostUsd: usage.costUsd }
}

/**
 * What one event changes in its task's summary. Failed model attempts count as model uses too: the model was called,
 * and what it used counts like a successful call's (usageDelta).
 */
export function summaryDelta(event: AnnalistEvent): SummaryDelta {
  switch (event.type) {
    case 'AgentTaskReceived':
      return { ...NONE, status: 'received', step: 'receive', startedAt: event.metadata.occurredAt }
    case 'RoutingModelInvoked':
    case 'PlanCreated':
    case 'PlanIterationCreated':
    case 'SynthesisModelInvoked': {
      const { step, role } = MODEL_EVENTS[event.type]
      return {
        ...NONE,
        status: 'running',
        step,
        ...(event.type === 'RoutingModelInvoked' ? { route: event.data.route } : {}),
        modelUsed: modelUse(role, event.data.model, event.data.prompt),
        ...usageDelta(event.data.usage, false),
      }
    }
    case 'RoutingModelFailed':
    case 'PlanningModelFailed':
    case 'SynthesisModelFailed': {
      const { step, role } = MODEL_EVENTS[event.type]
      return {
        ...NONE,
        ...usageDelta(event.data.usage, true),
        status: 'running',
        step,
        modelAttemptsFailed: 1,
        modelUsed: modelUse(role, event.data.model, event.data.prompt),
      }
    }
    case 'ToolCallExecuted':
      return { ...NONE, status: 'running', step: 'tools', toolCallsSucceeded: 1 }
    case 'ToolCallFailed':
      return { ...NONE, status: 'running', step: 'tools', toolCallsFailed: 1 }
    case 'AgentTaskCompleted':
      return { ...NONE, status: 'completed', step: 'complete', finishedAt: event.metadata.occurredAt }
    case 'AgentTaskCancelled':
      return { ...NONE, status: 'cancelled', step: event.data.cancelledStep, finishedAt: event.metadata.occurredAt }
    case 'AgentTaskFailed':
      return {
        ...NONE,
        status: 'failed',
        step: event.data.failedStep,
        failedStep: event.data.failedStep,
        errorCode: event.data.errorCode,
        finishedAt: event.metadata.occurredAt,
      }
    case 'TaskRunStarted':
      return { ...NONE, status: 'running', step: event.data.fromStep, reopens: true }
    case 'TaskRunContinued':
    case 'TaskDeadLettered':
    case 'RedriveRequested':
    case 'ToolCallCompensated':
    case 'ToolCompensationFailed':
    case 'StreamLifecycleDecided':
      return { ...NONE }
  }
}

/**
 * The key of the activity an event was recorded by, within its task: run ID and activity ID. Attempts are counted per
 * key (`activity_attempts`), so a replay as a new run counts its own attempts.
 */
export function activityKey(metadata: { readonly runId: string; readonly activityId: string }): string {
  return `${metadata.runId}/${metadata.activityId}`
}

/** The columns a batch folds in JS, starting from the task's existing row. */
interface FoldedColumns {
  status: TaskStatus
  current_step: SummaryDelta['step']
  failed_step: string | null
  error_code: string | null
  route: string | null
  models_used: Record<string, unknown>[]
  attempts: number
  activity_attempts: Record<string, number>
  /** When the task's latest run ended; a new run (TaskRunStarted) clears it until that run ends. */
  finished_at: string | null
}

/** What folding a batch needs of a task's existing row, read once per batch. */
interface SummaryRow extends FoldedColumns {
  tenant_id: string
  task_id: string
  last_position: string
}

/**
 * A task's row after a batch: the folded columns (status and step, the latest failed step, error and route, the
 * distinct models, attempts), and the batch's sums, which the upsert adds to the row in SQL (costs as the events' own
 * decimal strings, summed as numeric, so that the total is exactly the per-event one). `costs` has one entry per event;
 * `failed_costs` and `estimated_costs` only the failed calls' reported costs and the unreported calls' estimates.
 */
interface SummaryWrite extends FoldedColumns {
  tenant_id: string
  task_id: string
  tool_calls_succeeded: number
  tool_calls_failed: number
  model_attempts_failed: number
  total_tokens: number
  costs: string[]
  failed_costs: string[]
  calls_without_reported_usage: number
  estimated_unreported_tokens: number
  estimated_costs: string[]
  events_applied: number
  started_at: string | null
  first_position: string
  last_position: string
}

const FINISHED: readonly TaskStatus[] = [TaskStatus.completed, TaskStatus.failed, TaskStatus.cancelled]

/** jsonb equality for the flat string-valued objects in models_used: the same keys with the same values. */
function sameModel(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && a[key] === b[key])
}

/**
 * Folds one task's events (log order) into its row, exactly as applying them one at a time would: an event at or below
 * the row's last position changes nothing; the first event creates the row; a finished task keeps its status and step
 * until a new run (TaskRunStarted) re-opens it and clears its failure;
 * a failed step, error code or route replaces the old one only when the event has one; a model use is added once;
 * each activity's highest attempt is kept and `attempts` grows by what an event raises it by. Undefined when no event applies.
 */
function foldTask(row: SummaryRow | undefined, events: readonly StoredEvent[]): SummaryWrite | undefined {
  let write: SummaryWrite | undefined
  const lastPosition = row ? BigInt(row.last_position) : undefined
  for (const stored of events) {
    if (lastPosition !== undefined && stored.position <= lastPosition) continue
    const delta = summaryDelta(stored.event)
    const key = activityKey(stored.event.metadata)
    const attempt = stored.event.metadata.attempt
    const position = stored.position.toString()
    if (!write) {
      const base = row ?? {
        status: delta.status ?? 'received',
        current_step: delta.step ?? 'receive',
        failed_step: null,
        error_code: null,
        route: null,
        models_used: [],
        attempts: 0,
        activity_attempts: {},
        finished_at: null,
      }
      write = {
        tenant_id: stored.event.metadata.tenantId,
        task_id: stored.event.metadata.taskId,
        status: base.status,
        current_step: base.current_step,
        failed_step: base.failed_step,
        error_code: base.error_code,
        route: base.route,
        tool_calls_succeeded: 0,
        tool_calls_failed: 0,
        model_attempts_failed: 0,
        models_used: [...base.models_used],
        total_tokens: 0,
        costs: [],
        failed_costs: [],
        calls_without_reported_usage: 0,
        estimated_unreported_tokens: 0,
        estimated_costs: [],
        events_applied: 0,
        started_at: null,
        finished_at: base.finished_at,
        first_position: position,
        last_position: position,
        attempts: base.attempts,
        activity_attempts: { ...base.activity_attempts },
      }
    }
    if (delta.reopens) {
      write.failed_step = null
      write.error_code = null
      write.finished_at = null
    }
    if (!FINISHED.includes(write.status) || delta.reopens) {
      write.status = delta.status ?? write.status
      write.current_step = delta.step ?? write.current_step
    }
    write.failed_step = delta.failedStep ?? write.failed_step
    write.error_code = delta.errorCode ?? write.error_code
    write.route = delta.route ?? write.route
    write.tool_calls_succeeded += delta.toolCallsSucceeded
    write.tool_calls_failed += delta.toolCallsFailed
    write.model_attempts_failed += delta.modelAttemptsFailed
    const used = delta.modelUsed as Record<string, unknown> | undefined
    if (used && !write.models_used.some((known) => sameModel(known, used))) write.models_used.push(used)
    write.total_tokens += delta.tokens
    write.costs.push(String(delta.costUsd))
    if (delta.failedCallCostUsd !== 0) write.failed_costs.push(String(delta.failedCallCostUsd))
    write.calls_without_reported_usage += delta.callsWithoutReportedUsage
    write.estimated_unreported_tokens += delta.estimatedTokens
    if (delta.callsWithoutReportedUsage !== 0) write.estimated_costs.push(String(delta.estimatedCostUsd))
    write.events_applied++
    write.started_at ??= delta.startedAt ?? null
    write.finished_at = delta.finishedAt ?? write.finished_at
    write.last_position = position
    const highest = Object.hasOwn(write.activity_attempts, key) ? write.activity_attempts[key]! : 0
    if (attempt > highest) {
      write.attempts += attempt - highest
      write.activity_attempts[key] = attempt
    }
  }
  return write
}

/** The existing rows of the batch's tasks, keyed by tenant and task. */
async function readRows(client: pg.PoolClient, table: string, tasks: readonly (readonly [string, string])[]): Promise<Map<string, SummaryRow>> {
  const result = await client.query<SummaryRow>(
    `select tenant_id, task_id, status, current_step, failed_step, error_code, route, models_used, attempts, activity_attempts,
            finished_at::text as finished_at, last_position
       from ${table}
      where (tenant_id, task_id) in (select * from unnest($1::text[], $2::text[]))`,
    [tasks.map(([tenant]) => tenant), tasks.map(([, task]) => task)],
  )
  return new Map(result.rows.map((row) => [taskKey(row.tenant_id, row.task_id), row]))
}

const taskKey = (tenantId: string, taskId: string) => JSON.stringify([tenantId, taskId])

/**
 * Per-task summary: one row per (tenant, task), folded from its events in log order. An event at or below the row's
 * `last_position` changes nothing, so applying events twice, or replaying from 0, is harmless. Once a task is
 * completed or failed its status and step stay put.
 *
 * Attempts: `activity_attempts` maps each activity (activityKey) to the highest Temporal attempt number any of its
 * events carries, and `attempts` is their sum. An attempt that crashed before recording anything is counted once a
 * later attempt of the same activity records something, because that event carries the higher attempt number.
 *
 * Usage (usageDelta): `total_tokens` and `total_cost_usd` sum what the provider reported for every model call,
 * successful or failed, `failed_call_cost_usd` the failed calls' part; a call without reported usage is counted in
 * `calls_without_reported_usage` and its estimate kept in `estimated_unreported_*`, outside the totals.
 *
 * A batch reads its tasks' rows once, folds each task's events in JS (foldTask) and writes one multi-row upsert;
 * `apply` is the batch of one event.
 */
export function taskSummaryProjection(): Projection<TaskSummaryTable> {
  const applyBatch = async (client: pg.PoolClient, events: readonly StoredEvent[], tables: ProjectionTables<TaskSummaryTable>): Promise<void> => {
    const byTask = new Map<string, StoredEvent[]>()
    for (const stored of events) {
      const key = taskKey(stored.event.metadata.tenantId, stored.event.metadata.taskId)
      const mine = byTask.get(key)
      if (mine) mine.push(stored)
      else byTask.set(key, [stored])
    }
    if (byTask.size === 0) return
    const tasks = [...byTask.values()].map((mine) => [mine[0]!.event.metadata.tenantId, mine[0]!.event.metadata.taskId] as const)
    const rows = await readRows(client, tables.task_summary, tasks)
    const writes = [...byTask].flatMap(([key, mine]) => foldTask(rows.get(key), mine) ?? [])
    if (writes.length === 0) return
    await client.query(
      `insert into ${tables.task_summary} as s (
         tenant_id, task_id, status, current_step, failed_step, error_code, route,
         tool_calls_succeeded, tool_calls_failed, model_attempts_failed, models_used,
         total_tokens, total_cost_usd, failed_call_cost_usd, calls_without_reported_usage,
         estimated_unreported_tokens, estimated_unreported_cost_usd,
         events_applied, started_at, finished_at, first_position, last_position, attempts, activity_attempts
       )
       select r.tenant_id, r.task_id, r.status, r.current_step, r.failed_step, r.error_code, r.route,
              r.tool_calls_succeeded, r.tool_calls_failed, r.model_attempts_failed, r.models_used,
              r.total_tokens, (select sum(cost::numeric) from jsonb_array_elements_text(r.costs) as cost),
              coalesce((select sum(cost::numeric) from jsonb_array_elements_text(r.failed_costs) as cost), 0),
              r.calls_without_reported_usage, r.estimated_unreported_tokens,
              coalesce((select sum(cost::numeric) from jsonb_array_elements_text(r.estimated_costs) as cost), 0),
              r.events_applied, r.started_at, r.finished_at, r.first_position, r.last_position, r.attempts, r.activity_attempts
         from jsonb_to_recordset($1::jsonb) as r(
                tenant_id text, task_id text, status text, current_step text, failed_step text, error_code text, route text,
                tool_calls_succeeded integer, tool_calls_failed integer, model_attempts_failed integer, models_used jsonb,
                total_tokens bigint, costs jsonb, failed_costs jsonb, calls_without_reported_usage integer,
                estimated_unreported_tokens bigint, estimated_costs jsonb, events_applied integer, started_at timestamptz,
                finished_at timestamptz, first_position bigint, last_position bigint, attempts integer, activity_attempts jsonb)
       on conflict (tenant_id, task_id) do update set
         status = excluded.status,
         current_step = excluded.current_step,
         failed_step = excluded.failed_step,
         error_code = excluded.error_code,
         route = excluded.route,
         tool_calls_succeeded = s.tool_calls_succeeded + excluded.tool_calls_succeeded,
         tool_calls_failed = s.tool_calls_failed + excluded.tool_calls_failed,
         model_attempts_failed = s.model_attempts_failed + excluded.model_attempts_failed,
         models_used = excluded.models_used,
         total_tokens = s.total_tokens + excluded.total_tokens,
         total_cost_usd = s.total_cost_usd + excluded.total_cost_usd,
         failed_call_cost_usd = s.failed_call_cost_usd + excluded.failed_call_cost_usd,
         calls_without_reported_usage = s.calls_without_reported_usage + excluded.calls_without_reported_usage,
         estimated_unreported_tokens = s.estimated_unreported_tokens + excluded.estimated_unreported_tokens,
         estimated_unreported_cost_usd = s.estimated_unreported_cost_usd + excluded.estimated_unreported_cost_usd,
         events_applied = s.events_applied + excluded.events_applied,
         started_at = coalesce(s.started_at, excluded.started_at),
         finished_at = excluded.finished_at,
         last_position = excluded.last_position,
         attempts = excluded.attempts,
         activity_attempts = excluded.activity_attempts
       where s.last_position < excluded.last_position`,
      [JSON.stringify(writes)],
    )
  }
  return {
    name: TASK_SUMMARY_PROJECTION,
    forgetTask: forgetTaskRows(),
    tables: ['task_summary'],
    applyBatch,
    apply: (client, stored, tables) => applyBatch(client, [stored], tables),
  }
}
