import { readEvent } from './events'
import type { EventStore, RecordedEvent } from './port'
import { snapshotDue, snapshotPolicy, type SnapshotPolicy } from './snapshots/snapshotPolicy'
import type { SnapshotBound, SnapshotStore, TaskSnapshot } from './snapshots/snapshotStore'
import { taskStreamName } from './streams'
import { evolve, initialTaskState, TASK_STATE_VERSION, TaskStateSchema, type TaskState } from './taskState'

/** Events read per round trip while folding. */
const PAGE_SIZE = 1_000

/** What loading a task's state needs: the event store and, optionally, snapshots beside it. */
export interface TaskStateDeps {
  readonly store: EventStore
  /** Without a snapshot store every load folds from the stream's first event. */
  readonly snapshots?: SnapshotStore
  /** When to save new snapshots while folding (default DEFAULT_SNAPSHOT_POLICY); `false` uses snapshots but never saves any. */
  readonly snapshotPolicy?: Partial<SnapshotPolicy> | false
}

/** The point in a stream's history to reconstruct: after the event at `revision` (inclusive), or as recorded by `timestamp`. */
export type StateTarget = { readonly revision: bigint } | { readonly timestamp: Date }

/** A task's state as reconstructed at one point of its stream. */
export interface LoadedTaskState {
  readonly streamName: string
  readonly state: TaskState
  /** The revision of the last event folded into `state`. */
  readonly revision: bigint
  /** When the store recorded that event. */
  readonly recordedAt: Date
  /** Whether the fold started from a snapshot instead of the first event. */
  readonly usedSnapshot: boolean
  /** The revision of that snapshot, if one was used. */
  readonly snapshotRevision?: bigint
  /** How many events were read and folded (after the snapshot, if one was used). */
  readonly eventsFolded: number
  /** How many new snapshots this load saved. */
  readonly snapshotsSaved: number
}

/** Thrown when a task's stream holds no events. */
export class TaskNotFoundError extends Error {
  constructor(
    readonly tenantId: string,
    readonly taskId: string,
    readonly streamName: string,
  ) {
    super(`task ${taskId} of tenant ${tenantId} has no events (stream ${streamName} is empty or does not exist)`)
    this.name = 'TaskNotFoundError'
  }
}

/** Thrown when a state target lies outside the stream: a revision beyond its end, or a time before its first event. */
export class StateTargetOutOfRangeError extends Error {
  constructor(
    readonly streamName: string,
    readonly target: StateTarget,
    reason: string,
  ) {
    super(`no state of ${streamName} at ${describeTarget(target)}: ${reason}`)
    this.name = 'StateTargetOutOfRangeError'
  }
}

function describeTarget(target: StateTarget): string {
  return 'revision' in target ? `revision ${target.revision}` : target.timestamp.toISOString()
}

function assertTarget(at: StateTarget | undefined): void {
  if (at === undefined) return
  if ('revision' in at) {
    if (typeof at.revision !== 'bigint' || at.revision < 0n) throw new RangeError(`at.revision must be a bigint >= 0, got ${String(at.revision)}`)
  } else if (!(at.timestamp instanceof Date) || !Number.isFinite(at.timestamp.getTime())) {
    throw new RangeError('at.timestamp must be a valid Date')
  }
}

/** Where a fold starts: a trusted snapshot, verified against the stream, or nothing (the first event). */
interface FoldStart {
  readonly state: TaskState
  readonly snapshot?: { readonly revision: bigint; readonly recordedAt: Date; readonly latestRecordedAt: Date }
}

/**
 * Reconstructs a task's state at `at` (default: now, after its last event): the newest trusted snapshot at or before the
 * target, then only the events after it (read by revision, never the whole stream), folded with the pure `evolve` up
 * to the target: the event at `revision` inclusive, or the longest prefix of events all recorded at or before
 * `timestamp`. Gives exactly the state a fold of all events from the first would (test/int/taskStateSnapshots.int.test.ts).
 *
 * A snapshot is trusted only if it was folded by this TASK_STATE_VERSION, its state passes TaskStateSchema, and the
 * stream still holds the same event at its revision; anything else is ignored and the fold starts from the first event.
 * While folding, snapshots are saved as `snapshotPolicy` says. An event this build cannot read throws
 * (UnknownEventTypeError, EventSchemaError): it is never skipped. Tenant and task IDs are checked before any I/O.
 */
export async function loadTaskState(deps: TaskStateDeps, tenantId: string, taskId: string, options: { at?: StateTarget } = {}): Promise<LoadedTaskState> {
  const streamName = taskStreamName(tenantId, taskId)
  const target = options.at
  assertTarget(target)
  const policy = deps.snapshots && deps.snapshotPolicy !== false ? snapshotPolicy(deps.snapshotPolicy) : undefined
  const byRevision = target && 'revision' in target ? target.revision : undefined
  const byTime = target && 'timestamp' in target ? target.timestamp : undefined
  const beyondTarget = (recorded: RecordedEvent) =>
    (byRevision !== undefined && recorded.revision > byRevision) || (byTime !== undefined && recorded.recordedAt.getTime() > byTime.getTime())

  /** One page of the stream from `fromRevision`, never past a revision target; `complete` when the stream has no more. */
  const read = async (fromRevision: bigint) => {
    const remaining = byRevision === undefined ? PAGE_SIZE : Number(byRevision - fromRevision + 1n)
    const requested = Math.max(1, Math.min(PAGE_SIZE, remaining))
    const events = await deps.store.readStream(streamName, { fromRevision, maxCount: requested })
    return { events, complete: events.length < requested }
  }

  let start: FoldStart = { state: initialTaskState }
  let page: Awaited<ReturnType<typeof read>> | undefined
  const bound: SnapshotBound | undefined = byRevision !== undefined ? { revision: byRevision } : byTime ? { recordedAtOrBefore: byTime } : undefined
  const snapshot = deps.snapshots ? await deps.snapshots.findLatest(tenantId, streamName, TASK_STATE_VERSION, bound) : undefined
  if (snapshot && snapshot.stateVersion === TASK_STATE_VERSION) {
    const parsed = TaskStateSchema.safeParse(snapshot.state)
    // Read from the snapshot's own revision: the first event read proves the stream still holds what was folded.
    const fromSnapshot = parsed.success ? await read(snapshot.revision) : undefined
    const at = fromSnapshot?.events[0]
    if (parsed.success && fromSnapshot && at && at.revision === snapshot.revision && at.eventId === snapshot.eventId) {
      start = { state: parsed.data, snapshot: { revision: snapshot.revision, recordedAt: at.recordedAt, latestRecordedAt: snapshot.latestRecordedAt } }
      page = { events: fromSnapshot.events.slice(1), complete: fromSnapshot.complete }
    }
  }

  let state = start.state
  let last = start.snapshot ? { revision: start.snapshot.revision, recordedAt: start.snapshot.recordedAt } : undefined
  let latestRecordedAt = start.snapshot?.latestRecordedAt
  let firstSeen: RecordedEvent | undefined
  let eventsFolded = 0
  const since = { events: 0, bytes: 0 }
  const toSave: TaskSnapshot[] = []
  page ??= await read(0n)
  for (;;) {
    let reachedTarget = false
    for (const recorded of page.events) {
      firstSeen ??= recorded
      if (beyondTarget(recorded)) {
        reachedTarget = true
        break
      }
      state = evolve(state, readEvent(recorded))
      eventsFolded++
      last = { revision: recorded.revision, recordedAt: recorded.recordedAt }
      if (latestRecordedAt === undefined || recorded.recordedAt.getTime() > latestRecordedAt.getTime()) latestRecordedAt = recorded.recordedAt
      if (policy) {
        since.events++
        since.bytes += JSON.stringify(recorded.data ?? null).length
        if (snapshotDue(policy, since)) {
          toSave.push({ tenantId, streamName, revision: recorded.revision, eventId: recorded.eventId, latestRecordedAt, stateVersion: TASK_STATE_VERSION, state })
          since.events = 0
          since.bytes = 0
        }
      }
    }
    if (reachedTarget || page.complete || last === undefined || (byRevision !== undefined && last.revision >= byRevision)) break
    page = await read(last.revision + 1n)
  }

  if (last === undefined) {
    if (!firstSeen) throw new TaskNotFoundError(tenantId, taskId, streamName)
    const reason =
      byTime !== undefined
        ? `its first event (revision ${firstSeen.revision}) was recorded at ${firstSeen.recordedAt.toISOString()}`
        : `its first readable event is at revision ${firstSeen.revision}`
    throw new StateTargetOutOfRangeError(streamName, target!, reason)
  }
  if (byRevision !== undefined && last.revision < byRevision) {
    throw new StateTargetOutOfRangeError(streamName, target!, `the stream ends at revision ${last.revision}`)
  }
  if (deps.snapshots && toSave.length > 0) await deps.snapshots.save(toSave)
  return {
    streamName,
    state,
    revision: last.revision,
    recordedAt: last.recordedAt,
    usedSnapshot: start.snapshot !== undefined,
    snapshotRevision: start.snapshot?.revision,
    eventsFolded,
    snapshotsSaved: toSave.length,
  }
}
