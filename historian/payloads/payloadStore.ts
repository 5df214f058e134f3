import type { Classification } from '../events/metadata'
import type { ContentRef } from './contentRef'

/** The task a reader expects a payload to belong to: a ref of another tenant or task reads as unknown. */
export interface PayloadOwner {
  readonly tenantId: string
  readonly taskId: string
}

/** One payload to write: its task, what it is, its content and label, and the caller's idempotency key (with the rest, it fixes the ref). */
export interface PayloadToPut extends PayloadOwner {
  /** What the content is, e.g. `task-input` or `response-text`: stored in the clear and bound into the encryption. */
  readonly purpose: string
  readonly content: string
  readonly classification: Classification
  readonly idempotencyKey: string
}

/** A read's answer: the content, or why it is gone. Erasure is an outcome a reader handles, not an exception. */
export type PayloadRead =
  | { readonly status: 'present'; readonly content: string }
  | { readonly status: 'erased'; readonly reason: 'keys-destroyed' | 'shredded'; readonly erasedAt: Date }

/** An unreferenced payload older than the sweep's cut-off: a write-first append that never happened (docs/erasure.md). */
export interface OrphanPayload extends PayloadOwner {
  readonly ref: string
  readonly createdAt: Date
}

/** Where content lives, encrypted under its task's data key, while events hold only its ContentRef (docs/erasure.md). */
export interface PayloadStore {
  /**
   * Encrypts and stores the content under its deterministic ref and returns the ContentRef. Idempotent: the same
   * payload again returns the same ref and adds no row; another content or classification under that ref throws
   * PayloadConflictError and changes nothing. Throws KeyDestroyedError for an erased task.
   */
  put(payload: PayloadToPut): Promise<ContentRef>
  /** The content behind `ref` if it belongs to `expected`; throws UnknownPayloadError otherwise, the same whether the ref exists elsewhere or not. */
  get(ref: string, expected: PayloadOwner): Promise<PayloadRead>
  /** Whether `content` has the ref's keyed digest; 'erased' once its keys were destroyed. Throws UnknownPayloadError like `get`. */
  verifyDigest(ref: ContentRef, content: string, expected: PayloadOwner): Promise<boolean | 'erased'>
  /** Payloads created before `olderThan` for which `isReferenced(ref)` is false, in ref order, at most `limit` (default 100). */
  listOrphans(olderThan: Date, isReferenced: (ref: string) => Promise<boolean>, options?: { readonly limit?: number }): Promise<OrphanPayload[]>
  /** Deletes an orphan's row; false if it was already gone. The caller checks it is unreferenced (listOrphans) first. */
  deleteOrphan(ref: string): Promise<boolean>
}

/** Thrown when no payload with a ref exists for the expected tenant and task; a ref of another tenant or task reads the same. */
export class UnknownPayloadError extends Error {
  constructor(readonly ref: string) {
    super(`no payload ${JSON.stringify(ref.slice(0, 64))} exists for this tenant and task`)
    this.name = 'UnknownPayloadError'
  }
}

/** Thrown when a put's ref already holds another content, classification or purpose: an idempotency key was reused for different data. */
export class PayloadConflictError extends Error {
  constructor(readonly ref: string) {
    super(`payload ${ref} already holds other content, classification or purpose for this idempotency key; nothing was written`)
    this.name = 'PayloadConflictError'
  }
}
