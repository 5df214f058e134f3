import type pg from 'pg'
import type { SigningKeyStore } from '../historian/evidence/signingKeys'
import type { TenantKeyRing } from '../historian/integrity/tenantKeyRing'
import type { EventStore } from '../historian/port'

/** A redrive as the API asks for it: which task, who asked (the key, recorded as requestedBy) and why. */
export interface RedriveTaskRequest {
  readonly tenantId: string
  readonly taskId: string
  readonly requestedBy: string
  readonly note?: string
}

/** A redrive that started: the new run of the task's workflow, linked to the dead-lettered one. */
export interface RedriveTaskStarted {
  readonly workflowId: string
  readonly runId: string
  readonly parentRunId: string
  readonly fromStep: string
}

/**
 * Starts a redrive; wired to Temporal by the composition root (`annalist serve`). Throws OperationRefusedError when the
 * task cannot be redriven.
 */
export type RedriveTask = (request: RedriveTaskRequest) => Promise<RedriveTaskStarted>

/** A cancel as the API asks for it: which task, who asked (the key) and why. */
export interface CancelTaskRequest {
  readonly tenantId: string
  readonly taskId: string
  readonly requestedBy: string
  readonly reason: string
  /** Wait until the run recorded how it ended; otherwise answer once the pipeline accepted the request. */
  readonly wait: boolean
}

/** What became of a cancel: accepted by the run (not waited for), or how the run ended. */
export interface CancelTaskAnswer {
  readonly workflowId: string
  readonly runId: string
  readonly status: 'accepted' | 'cancelled' | 'completed' | 'failed'
  readonly terminalEventId?: string
}

/**
 * Cancels a task's running pipeline through its cancel Update (docs/cancellation.md); wired to Temporal by `annalist
 * serve`. Throws OperationRefusedError when there is no running pipeline to cancel or the request is refused.
 */
export type CancelTask = (request: CancelTaskRequest) => Promise<CancelTaskAnswer>

/** Thrown when a state-changing request is valid and allowed but the system refuses it as it stands (HTTP 409). */
export class OperationRefusedError extends Error {
  readonly statusCode = 409
  constructor(message: string) {
    super(message)
    this.name = 'OperationRefusedError'
  }
}

/** What the API's routes read from: the read-model database, the event store (exports, lag) and the chain keys. */
export interface ApiDeps {
  readonly pool: pg.Pool
  readonly store: EventStore
  readonly keyRing: TenantKeyRing
  /** The clock for default time windows and lag; unset: the system clock (the database clock for lag). */
  readonly now?: () => Date
  /** How to redrive a task; unset when the server has no Temporal connection (the redrive route answers 503). */
  readonly redriveTask?: RedriveTask
  /** How to cancel a task; unset when the server has no Temporal connection (the cancel route answers 503). */
  readonly cancelTask?: CancelTask
  /** The evidence signing keys GET /v1/keys/signing publishes; unset when none are configured (the route answers 503). */
  readonly signingKeys?: SigningKeyStore
}
