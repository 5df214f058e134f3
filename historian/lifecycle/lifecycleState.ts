import { v5 as uuidv5 } from 'uuid'
import { ANNALIST_EVENT_NAMESPACE } from '../eventIds'
import type { LifecycleDecision, StreamLifecycleDecided } from '../events'
import type { RecordedEvent, StreamMetadata, StreamMetadataResult } from '../port'

/** One recorded lifecycle decision as the derivation uses it: the event's data and where it sits in the log. */
export interface RecordedDecision {
  readonly position: bigint
  readonly recordedAt: Date
  readonly data: StreamLifecycleDecided['data']
}

/**
 * The lifecycle state of one stream that its recorded decisions derive, in the store's own terms: tombstoned, or the
 * retention rules (`metadata`, truncateBefore included) plus whether the last delete is still pending (`deletedThrough`:
 * the revision a soft delete hid everything up to, while no later decision replaced it).
 */
export interface DerivedLifecycle {
  readonly tombstoned: boolean
  readonly metadata: StreamMetadata
  readonly deletedThrough?: bigint
}

/** The state of a stream no decision was ever recorded for. */
export const NO_DECISION: DerivedLifecycle = { tombstoned: false, metadata: {} }

/**
 * Folds one stream's decisions, in log order, into the state the store must hold, mirroring the port's semantics: a soft
 * delete hides everything up to its revision (truncate-before = revision + 1); retention replaces maxAge and maxCount and
 * keeps the truncate-before; a truncation sets the truncate-before; a tombstone is final.
 */
export function deriveLifecycle(decisions: readonly StreamLifecycleDecided['data'][]): DerivedLifecycle {
  return decisions.reduce(evolveLifecycle, NO_DECISION)
}

function evolveLifecycle(state: DerivedLifecycle, decided: StreamLifecycleDecided['data']): DerivedLifecycle {
  if (state.tombstoned) return state
  const { decision } = decided
  const { truncateBefore } = state.metadata
  const keep = truncateBefore === undefined ? {} : { truncateBefore }
  switch (decision.kind) {
    case 'tombstone':
      return { tombstoned: true, metadata: {} }
    case 'soft_delete': {
      const through = BigInt(decided.streamRevision ?? -1)
      return { tombstoned: false, metadata: { ...state.metadata, truncateBefore: through + 1n }, deletedThrough: through }
    }
    case 'retain':
      return {
        tombstoned: false,
        metadata: {
          ...(decision.maxAgeSeconds === undefined ? {} : { maxAge: decision.maxAgeSeconds }),
          ...(decision.maxCount === undefined ? {} : { maxCount: decision.maxCount }),
          ...keep,
        },
      }
    case 'truncate':
      return { tombstoned: false, metadata: { ...state.metadata, truncateBefore: BigInt(decision.before) } }
  }
}

/** The lowest revision a stream in `state` still shows by its truncate-before (0 when none). */
export function hiddenBelow(state: DerivedLifecycle): bigint {
  return state.metadata.truncateBefore ?? 0n
}

/** A stream's lifecycle as the store reports it now: tombstoned, or its metadata. */
export type StoredLifecycle = { readonly tombstoned: true } | ({ readonly tombstoned: false } & StreamMetadataResult)

function sameMetadata(a: StreamMetadata, b: StreamMetadata): boolean {
  return a.maxAge === b.maxAge && a.maxCount === b.maxCount && a.truncateBefore === b.truncateBefore
}

function describeMetadata(metadata: StreamMetadata): string {
  const parts = [
    metadata.maxAge === undefined ? undefined : `maxAge ${metadata.maxAge}`,
    metadata.maxCount === undefined ? undefined : `maxCount ${metadata.maxCount}`,
    metadata.truncateBefore === undefined ? undefined : `truncateBefore ${metadata.truncateBefore}`,
  ].filter((part) => part !== undefined)
  return parts.length === 0 ? 'no rules' : parts.join(', ')
}

/**
 * Why the store's lifecycle of a stream differs from what its recorded decisions derive, or undefined when it does not.
 * `lastVisibleRevision` is the stream's newest visible revision: a stream soft-deleted by a decision and appended to
 * since shows its truncate-before again and is no longer deleted, as the store's semantics say.
 */
export function lifecycleDrift(derived: DerivedLifecycle, stored: StoredLifecycle, lastVisibleRevision: bigint | undefined): string | undefined {
  if (derived.tombstoned) return stored.tombstoned ? undefined : 'the decisions tombstone it, the store does not'
  if (stored.tombstoned) return 'the store has it tombstoned, but no recorded decision tombstones it'
  const expected = derived.metadata
  if (derived.deletedThrough !== undefined) {
    if (stored.deleted) {
      const { truncateBefore: _hidden, ...shown } = expected
      return sameMetadata(shown, stored.metadata) ? undefined : `the store has ${describeMetadata(stored.metadata)} (deleted), the decisions ${describeMetadata(shown)} (deleted)`
    }
    if (lastVisibleRevision === undefined || lastVisibleRevision <= derived.deletedThrough) {
      return `the decisions soft-delete it through revision ${derived.deletedThrough}, the store does not`
    }
  } else if (stored.deleted) {
    return 'the store has it soft-deleted, but no recorded decision deletes it'
  }
  if (stored.metadataRevision === 'no_metadata' && Object.keys(expected).length === 0) return undefined
  return sameMetadata(expected, stored.metadata) ? undefined : `the store has ${describeMetadata(stored.metadata)}, the decisions ${describeMetadata(expected)}`
}

/**
 * Whether `decision`, taken at `decided` (its revision and time), hides `event` of its target stream: the events a
 * projection drops when the decision reaches it, whether or not the store applied it yet. maxAge is judged at `at`
 * (the decision's own time unless a sweep gives another).
 */
export function decisionHides(decided: StreamLifecycleDecided['data'], event: Pick<RecordedEvent, 'revision' | 'recordedAt'>, at: Date = new Date(decided.decidedAt)): boolean {
  const { decision } = decided
  const through = decided.streamRevision === null ? -1n : BigInt(decided.streamRevision)
  switch (decision.kind) {
    case 'tombstone':
      return true
    case 'soft_delete':
      return event.revision <= through
    case 'truncate':
      return event.revision < BigInt(decision.before)
    case 'retain':
      return (
        (decision.maxCount !== undefined && event.revision <= through - BigInt(decision.maxCount)) ||
        (decision.maxAgeSeconds !== undefined && expiredAt(event.recordedAt, decision.maxAgeSeconds, at))
      )
  }
}

/** True when an event recorded at `recordedAt` is older than `maxAgeSeconds` at `at` (the store's maxAge rule). */
export function expiredAt(recordedAt: Date, maxAgeSeconds: number, at: Date): boolean {
  return recordedAt.getTime() <= at.getTime() - maxAgeSeconds * 1_000
}

/**
 * The ID of a decision, which is also its event's: UUIDv5 over the tenant, the target, what was decided, the revision it
 * was decided against and the decision it follows (the previous one about the same stream, or none). A command retried
 * after a crash therefore names the same decision; deciding the same again later, after another decision, is a new one.
 */
export function lifecycleDecisionId(input: {
  readonly tenantId: string
  readonly targetStream: string
  readonly decision: LifecycleDecision
  readonly streamRevision: number | null
  readonly follows: string | null
}): string {
  const what = JSON.stringify(canonicalDecision(input.decision))
  return uuidv5(`lifecycle:${input.tenantId}:${input.targetStream}:${what}:${input.streamRevision ?? 'none'}:${input.follows ?? 'first'}`, ANNALIST_EVENT_NAMESPACE)
}

/** The decision with its fields in a fixed order, so equal decisions serialize equally. */
export function canonicalDecision(decision: LifecycleDecision): LifecycleDecision {
  switch (decision.kind) {
    case 'retain':
      return {
        kind: 'retain',
        ...(decision.maxAgeSeconds === undefined ? {} : { maxAgeSeconds: decision.maxAgeSeconds }),
        ...(decision.maxCount === undefined ? {} : { maxCount: decision.maxCount }),
      }
    case 'truncate':
      return { kind: 'truncate', before: decision.before }
    default:
      return { kind: decision.kind }
  }
}
