/**
 * Snapshots of folded task state, stored beside the event log so that reconstructing a long stream reads only the
 * events after the newest snapshot. A snapshot is a cache, never a source of truth: `loadTaskState` trusts one only if
 * it was folded by the same state version, and the stream still holds the very event it was taken at.
 */

/** The state of one stream folded up to and including `revision`, as a loader saves it. */
export interface TaskSnapshot {
  readonly tenantId: string
  readonly streamName: string
  /** The revision of the last event folded into `state`. */
  readonly revision: bigint
  /** The ID of the event at `revision`: if the stream no longer holds it there, the snapshot is stale and ignored. */
  readonly eventId: string
  /** The latest `recordedAt` among the events 0..revision, so a point-in-time read knows whether the snapshot precedes it. */
  readonly latestRecordedAt: Date
  /** The version of the state shape and fold (`TASK_STATE_VERSION`) that produced `state`. */
  readonly stateVersion: number
  /** The folded state as JSON. */
  readonly state: unknown
}

/** A snapshot as stored. */
export interface StoredSnapshot extends TaskSnapshot {
  readonly createdAt: Date
}

/** The newest snapshot wanted: at or before a revision, or covering only events recorded at or before a time. */
export type SnapshotBound = { readonly revision: bigint } | { readonly recordedAtOrBefore: Date }

/** Where snapshots are kept: keyed by (stream, revision) and only ever read for the stream's own tenant. */
export interface SnapshotStore {
  /**
   * The newest snapshot of `streamName` folded with `stateVersion`, within `bound` if given. Snapshots of other state
   * versions are never returned. Throws RangeError, before any I/O, if `streamName` is not a stream of `tenantId`.
   */
  findLatest(tenantId: string, streamName: string, stateVersion: number, bound?: SnapshotBound): Promise<StoredSnapshot | undefined>
  /** Saves snapshots. One already stored at the same (stream, revision) is replaced only if its state version or event ID differ. */
  save(snapshots: readonly TaskSnapshot[]): Promise<void>
  /** Removes every snapshot of a stream (for example after the stream was deleted or truncated); returns how many. */
  deleteStream(tenantId: string, streamName: string): Promise<number>
}
