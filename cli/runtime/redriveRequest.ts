import { randomUUID } from 'node:crypto'
import type { Client } from '@temporalio/client'
import { redriveTarget, RedriveRefusedError, type RedriveTarget } from '../../activities/taskDeadLetter'
import { OperationRefusedError, type RedriveTask } from '../../api/apiDeps'
import { buildEvent, REDRIVE_REQUEST_ACTIVITY } from '../../historian/events'
import type { Historian } from '../../historian/historian'
import type { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { ConcurrencyError } from '../../historian/port'
import { pipelineWorkflowId } from '../../workflows/api'
import { LinkedRunRefusedError, startLinkedRun } from './linkedRuns'

/** Who asks for a redrive of which task, and whether it repeats one whose run never started. */
export interface RedriveRequest {
  readonly tenantId: string
  readonly taskId: string
  readonly requestedBy: string
  readonly note?: string
  readonly resume?: boolean
}

/** How often a request is decided again after another writer appended to the task's stream first. */
const MAX_RACES = 5

/**
 * Decides whether the task can be redriven (redriveTarget) and records the decision as RedriveRequested in the task's
 * stream, appended at the revision it was decided on. Of two redrives racing each other, one records its request; the
 * other's append conflicts, it decides again on the stream as it now is, and is refused (RedriveRefusedError), as is
 * any later redrive. Only then may the caller start the new run. Returns what the run must start from.
 */
export async function requestRedrive(historian: Historian, request: RedriveRequest, clock: () => Date = () => new Date()): Promise<RedriveTarget> {
  const { tenantId, taskId } = request
  for (let race = 0; race < MAX_RACES; race++) {
    const stream = await historian.readTask(tenantId, taskId)
    // After losing a race, decide without --resume: the winner's request must refuse this one.
    const target = redriveTarget(tenantId, taskId, stream.events, { resume: request.resume === true && race === 0 })
    const workflowId = pipelineWorkflowId(tenantId, taskId)
    const data = { deadLetteredRunId: target.parentRunId, requestedBy: request.requestedBy, ...(request.note === undefined ? {} : { note: request.note }), resumed: request.resume === true }
    const event = buildEvent('RedriveRequested', data, {
      tenantId,
      taskId,
      workflowId,
      runId: target.parentRunId,
      activityId: REDRIVE_REQUEST_ACTIVITY,
      attempt: 1,
      correlationId: workflowId,
      causationId: stream.events.at(-1)?.eventId ?? null,
      occurredAt: clock().toISOString(),
      classification: 'internal',
    })
    try {
      await historian.appendToTask(tenantId, taskId, [{ eventId: randomUUID(), event }], stream)
      return target
    } catch (error) {
      if (!(error instanceof ConcurrencyError)) throw error
    }
  }
  throw new RedriveRefusedError(tenantId, taskId, `its stream kept changing under ${MAX_RACES} attempts to record the request; try again`)
}

/** What a redrive needs: the Temporal client and task queue to start the run on, the historian and the chain keys. */
export interface RedriveDeps {
  readonly client: Client
  readonly historian: Historian
  readonly keyRing: TenantKeyRing
  readonly taskQueue: string
}

/** A redrive that started: the new run, and the dead letter it redrove. */
export interface RedriveStarted {
  readonly target: RedriveTarget
  readonly workflowId: string
  readonly runId: string
  readonly parentRunId: string
}

/**
 * Redrives a dead-lettered task: records the request (requestRedrive), then starts the new run from the failed step,
 * linked to the dead-lettered one. Used by `annalist redrive` and the API's redrive route.
 */
export async function redriveTask(deps: RedriveDeps, request: RedriveRequest): Promise<RedriveStarted> {
  const target = await requestRedrive(deps.historian, request)
  const { tenantId, taskId, requestedBy, note } = request
  const started = await startLinkedRun(deps, { tenantId, taskId, fromStep: target.fromStep, reason: 'redrive', requestedBy, ...(note === undefined ? {} : { note }) })
  return { target, workflowId: started.workflowId, runId: started.runId, parentRunId: started.parentRunId }
}

/** The API's redrive (RedriveTask) over redriveTask: a refused redrive becomes OperationRefusedError (HTTP 409). */
export function apiRedriveTask(deps: RedriveDeps): RedriveTask {
  return async (request) => {
    try {
      const started = await redriveTask(deps, request)
      return { workflowId: started.workflowId, runId: started.runId, parentRunId: started.parentRunId, fromStep: started.target.fromStep }
    } catch (error) {
      if (error instanceof RedriveRefusedError || error instanceof LinkedRunRefusedError) throw new OperationRefusedError(error.message)
      throw error
    }
  }
}
