/**
 * When a loader saves a new snapshot while it folds: once `everyEvents` events have been folded since the last
 * snapshot, or sooner once those events amount to `everyBytes` characters of serialized data (a few events carrying
 * large tool results cost as much to read and upcast as many small ones, and make the state they fold into large).
 */
export interface SnapshotPolicy {
  readonly everyEvents: number
  readonly everyBytes: number
}

/** Every 50 events, or every 256 KiB of event data, whichever comes first. */
export const DEFAULT_SNAPSHOT_POLICY: SnapshotPolicy = Object.freeze({ everyEvents: 50, everyBytes: 256 * 1024 })

/** Thrown when a snapshot policy's thresholds are not whole numbers >= 1. */
export class SnapshotPolicyError extends Error {
  constructor(
    readonly field: keyof SnapshotPolicy,
    readonly value: unknown,
  ) {
    super(`snapshot policy ${field} must be a whole number >= 1, got ${String(value)}`)
    this.name = 'SnapshotPolicyError'
  }
}

/** The default policy with `overrides` applied, validated. */
export function snapshotPolicy(overrides: Partial<SnapshotPolicy> = {}): SnapshotPolicy {
  const policy = { ...DEFAULT_SNAPSHOT_POLICY, ...overrides }
  for (const field of ['everyEvents', 'everyBytes'] as const) {
    if (!Number.isSafeInteger(policy[field]) || policy[field] < 1) throw new SnapshotPolicyError(field, policy[field])
  }
  return policy
}

/** Whether the events folded since the last snapshot call for a new one. */
export function snapshotDue(policy: SnapshotPolicy, since: { readonly events: number; readonly bytes: number }): boolean {
  return since.events >= policy.everyEvents || since.bytes >= policy.everyBytes
}
