import { isDeepStrictEqual } from 'node:util'
import { buildEvent, LIFECYCLE_DECISION_ACTIVITY, StreamLifecycleDecided, type LifecycleDecision } from '../events'
import type { Historian } from '../historian'
import { ConcurrencyError, StreamTombstonedError, UnsupportedStoreOperationError, type EventStore } from '../port'
import { assertTaskId, assertTenantId, taskStreamName } from '../streams'
import { decisionOf, readAllDecisions } from './lifecycleDecisions'
import { LifecycleDecisionError } from './lifecycleErrors'
import {
  canonicalDecision,
  deriveLifecycle,
  hiddenBelow,
  lifecycleDecisionId,
  lifecycleDrift,
  type DerivedLifecycle,
  type RecordedDecision,
  type StoredLifecycle,
} from './lifecycleState'

/** What an operator asks to decide about one task's stream. */
export interface DecisionRequest {
  readonly tenantId: string
  readonly taskId: string
  readonly decision: LifecycleDecision
  readonly decidedBy: string
  readonly reason: string
}

/** What recordLifecycleDecision did. */
export interface DecisionOutcome {
  /** The decision in force: the one just recorded, or the earlier one that already decided the same. */
  readonly decision: StreamLifecycleDecided['data']
  /** False when the same decision was already in force (a retried command): nothing new was recorded. */
  readonly recorded: boolean
  /** Streams of the tenant whose store state had to be brought in line with the decisions (the target usually). */
  readonly applied: readonly string[]
}

/** How one stream's store state compares with its decisions. */
export interface LifecycleStreamState {
  readonly stream: string
  /** Why the store differs from the decisions; undefined when it agrees. */
  readonly drift?: string
}

/** What a sync or check found, stream by stream. */
export interface LifecycleReport {
  /** Streams the decisions name, and (where the store can list them) streams the store holds lifecycle state for. */
  readonly streams: readonly LifecycleStreamState[]
  /** Streams the sync brought in line with their decisions. */
  readonly healed: readonly string[]
  /** False when the store cannot list its lifecycle state (EventStoreDB): rows without a decision go unnoticed. */
  readonly listedStore: boolean
}

const MAX_ATTEMPTS = 5

/**
 * Records a lifecycle decision about one task's stream, then applies it. The decision is appended to the tenant's
 * compliance stream first, with an explicit expected revision and a stable ID (lifecycleDecisionId), and only then is
 * the store's lifecycle state derived again from the tenant's decisions and applied (syncStreams), so a crash in between
 * is healed by the next decision or `lifecycle sync`. A decision that changes nothing the decisions already derive (a
 * retried command) records nothing and only applies again. Refused with LifecycleDecisionError, before anything is
 * written: a stream with no event, a tombstoned stream, a truncation below what is already hidden.
 */
export async function recordLifecycleDecision(historian: Historian, request: DecisionRequest, clock: () => Date = () => new Date()): Promise<DecisionOutcome> {
  const tenantId = assertTenantId(request.tenantId)
  const taskId = assertTaskId(request.taskId)
  const targetStream = taskStreamName(tenantId, taskId)
  const decision = canonicalDecision(request.decision)
  for (let attempt = 1; ; attempt++) {
    const compliance = await historian.readCompliance(tenantId)
    const decided = compliance.events.flatMap((stored) => {
      const one = decisionOf(stored)
      return one && one.data.targetStream === targetStream ? [one.data] : []
    })
    const before = deriveLifecycle(decided)
    const streamRevision = before.tombstoned ? null : await revisionDecidedAgainst(historian.store, targetStream, decided)
    const decidedAt = clock().toISOString()
    const data: StreamLifecycleDecided['data'] = {
      decisionId: lifecycleDecisionId({ tenantId, targetStream, decision, streamRevision, follows: decided.at(-1)?.decisionId ?? null }),
      targetStream,
      decision,
      decidedBy: request.decidedBy.trim(),
      reason: request.reason.trim(),
      decidedAt,
      streamRevision,
    }
    if (isDeepStrictEqual(deriveLifecycle([...decided, data]), before) && decided.length > 0 && decided.at(-1)!.decision.kind === decision.kind) {
      const applied = await syncTenant(historian.store, compliance.events.flatMap((stored) => decisionOf(stored) ?? []))
      return { decision: decided.at(-1)!, recorded: false, applied }
    }
    refuseUnlessPossible(targetStream, decision, before, streamRevision)
    const event = StreamLifecycleDecided.parse(
      buildEvent('StreamLifecycleDecided', data, {
        tenantId,
        taskId,
        workflowId: `lifecycle:${tenantId}`,
        runId: data.decisionId,
        activityId: LIFECYCLE_DECISION_ACTIVITY,
        attempt: 1,
        correlationId: data.decisionId,
        causationId: compliance.events.at(-1)?.eventId ?? null,
        occurredAt: decidedAt,
        classification: 'internal',
      }),
    )
    try {
      await historian.appendToCompliance(tenantId, [{ eventId: data.decisionId, event }], compliance.tail)
    } catch (error) {
      // Another decision of this tenant was recorded since we read: decide again against it.
      if (error instanceof ConcurrencyError && attempt < MAX_ATTEMPTS) continue
      throw error
    }
    const after = await historian.readCompliance(tenantId)
    const applied = await syncTenant(historian.store, after.events.flatMap((stored) => decisionOf(stored) ?? []))
    return { decision: data, recorded: true, applied }
  }
}

/**
 * The revision a decision is taken against: the stream's newest visible event; when its decisions hide every event (a
 * soft delete, a truncation, expiry), the newest revision an earlier decision was taken against (the port shows no
 * hidden revision); null for a stream that never had an event.
 */
async function revisionDecidedAgainst(store: EventStore, stream: string, decided: readonly StreamLifecycleDecided['data'][]): Promise<number | null> {
  const [last] = await store.readStream(stream, { direction: 'backwards', maxCount: 1 })
  if (last) return Number(last.revision)
  const newest = Math.max(-1, ...decided.map((one) => one.streamRevision ?? -1))
  return newest >= 0 ? newest : null
}

function refuseUnlessPossible(stream: string, decision: LifecycleDecision, before: DerivedLifecycle, streamRevision: number | null): void {
  if (before.tombstoned) throw new LifecycleDecisionError(stream, 'a recorded decision tombstoned it; no later decision can change it')
  if (streamRevision === null) throw new LifecycleDecisionError(stream, 'the stream has no event to decide about')
  if (decision.kind === 'truncate' && BigInt(decision.before) < hiddenBelow(before)) {
    throw new LifecycleDecisionError(stream, `truncate before ${decision.before} would show events below ${hiddenBelow(before)} again, which earlier decisions hide`)
  }
}

/** Groups decisions by target stream, each stream's in log order. */
function byTarget(decisions: readonly RecordedDecision[]): Map<string, RecordedDecision[]> {
  const grouped = new Map<string, RecordedDecision[]>()
  for (const decision of [...decisions].sort((a, b) => (a.position < b.position ? -1 : 1))) {
    grouped.set(decision.data.targetStream, [...(grouped.get(decision.data.targetStream) ?? []), decision])
  }
  return grouped
}

async function syncTenant(store: EventStore, decisions: readonly RecordedDecision[]): Promise<string[]> {
  const report = await syncStreams(store, byTarget(decisions), true)
  return report.filter((one) => one.healed).map((one) => one.stream)
}

/** The store's lifecycle of one stream: tombstoned, or its metadata. */
async function storedLifecycle(store: EventStore, stream: string): Promise<StoredLifecycle> {
  try {
    return { tombstoned: false, ...(await store.getStreamMetadata(stream)) }
  } catch (error) {
    if (error instanceof StreamTombstonedError) return { tombstoned: true }
    throw error
  }
}

async function lastVisibleRevision(store: EventStore, stream: string): Promise<bigint | undefined> {
  try {
    const [last] = await store.readStream(stream, { direction: 'backwards', maxCount: 1 })
    return last?.revision
  } catch (error) {
    if (error instanceof StreamTombstonedError) return undefined
    throw error
  }
}

/**
 * How one stream's store state compares with `derived`: its drift, if any, and whether applying the decisions can heal
 * it (a tombstone no decision made cannot be undone).
 */
async function driftOf(store: EventStore, stream: string, derived: DerivedLifecycle): Promise<{ drift?: string; healable: boolean }> {
  const stored = await storedLifecycle(store, stream)
  const drift = lifecycleDrift(derived, stored, await lastVisibleRevision(store, stream))
  return { ...(drift === undefined ? {} : { drift }), healable: derived.tombstoned || !stored.tombstoned }
}

/**
 * Brings the store's lifecycle state of `stream` in line with `derived`, through the port only: a tombstone, or the
 * derived rules (truncate-before included) followed by the pending soft delete. Idempotent: applying it again finds no
 * drift and writes nothing. A stream the store tombstoned without a decision cannot be healed and is left as it is.
 */
async function applyDerived(store: EventStore, stream: string, derived: DerivedLifecycle): Promise<void> {
  if (derived.tombstoned) {
    await store.tombstoneStream(stream, { expectedRevision: 'any' })
    return
  }
  await store.setStreamMetadata(stream, derived.metadata)
  if (derived.deletedThrough === undefined) return
  try {
    await store.deleteStream(stream, { expectedRevision: derived.deletedThrough })
  } catch (error) {
    // Appended to since the decision: those events stay, the ones it hid stay below the truncate-before.
    if (!(error instanceof ConcurrencyError)) throw error
  }
}

async function syncStreams(store: EventStore, decisions: ReadonlyMap<string, readonly RecordedDecision[]>, heal: boolean): Promise<(LifecycleStreamState & { healed: boolean })[]> {
  const states: (LifecycleStreamState & { healed: boolean })[] = []
  for (const [stream, list] of decisions) {
    const derived = deriveLifecycle(list.map((one) => one.data))
    const found = await driftOf(store, stream, derived)
    let { drift } = found
    let healed = false
    if (drift !== undefined && heal && found.healable) {
      await applyDerived(store, stream, derived)
      drift = (await driftOf(store, stream, derived)).drift
      healed = drift === undefined
    }
    states.push({ stream, ...(drift === undefined ? {} : { drift }), healed })
  }
  return states
}

/**
 * Derives every stream's lifecycle from every tenant's recorded decisions and compares it with the store's; with
 * `heal`, brings each differing stream in line first (`lifecycle sync`). Streams the store holds lifecycle state for
 * without any decision are reported (a stream_metadata row written by SQL, say) and never healed: only a recorded
 * decision may explain a hidden event. EventStoreDB cannot list its stream metadata: there only the streams the
 * decisions name are compared (`listedStore: false`).
 */
export async function reconcileLifecycle(store: EventStore, options: { heal: boolean }): Promise<LifecycleReport> {
  const decisions = await readAllDecisions(store)
  const states = await syncStreams(store, decisions, options.heal)
  let listedStore = true
  try {
    for (const stream of await store.listLifecycleStreams()) {
      if (decisions.has(stream)) continue
      const { drift } = await driftOf(store, stream, deriveLifecycle([]))
      if (drift !== undefined) states.push({ stream, drift: `${drift} (no decision recorded for it)`, healed: false })
    }
  } catch (error) {
    if (!(error instanceof UnsupportedStoreOperationError)) throw error
    listedStore = false
  }
  states.sort((a, b) => (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : 0))
  return {
    streams: states.map(({ healed: _healed, ...state }) => state),
    healed: states.filter((state) => state.healed).map((state) => state.stream),
    listedStore,
  }
}

/** A tenant's recorded lifecycle decisions, oldest first, from its compliance stream. */
export async function listLifecycleDecisions(historian: Historian, tenantId: string): Promise<RecordedDecision[]> {
  const compliance = await historian.readCompliance(assertTenantId(tenantId))
  return compliance.events.flatMap((stored) => decisionOf(stored) ?? [])
}
