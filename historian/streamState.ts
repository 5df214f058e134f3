import { classifyRejectedAppend } from './appendConflicts'
import { assertStreamName } from './appendRules'
import {
  ConcurrencyError,
  EventIdConflictError,
  type AppendResult,
  type ExpectedMetadataRevision,
  type ExpectedRevision,
  type ExpectedRevisionForDelete,
  type NewEvent,
  type RecordedEvent,
  type StreamMetadata,
} from './port'

/**
 * What an expected revision is checked against: the highest revision ever written to the stream (soft deletes and
 * retention hide events but keep the numbering) and whether the stream is soft-deleted and not written since.
 */
export interface StreamState {
  readonly lastRevision: bigint | undefined
  readonly deleted: boolean
}

/**
 * True when a stream in `state` satisfies `expected`. A soft-deleted stream behaves as EventStoreDB's does: it accepts
 * 'no_stream', 'any' and its last revision, and refuses 'stream_exists'.
 */
export function matchesStreamState(expected: ExpectedRevision, state: StreamState): boolean {
  if (expected === 'any') return true
  if (expected === 'no_stream') return state.lastRevision === undefined || state.deleted
  if (expected === 'stream_exists') return state.lastRevision !== undefined && !state.deleted
  return state.lastRevision === expected
}

/** The `actual` a ConcurrencyError reports: 'no_stream' for a stream never written, or soft-deleted and not written since. */
export function actualRevisionOf(state: StreamState): bigint | 'no_stream' {
  return state.lastRevision === undefined || state.deleted ? 'no_stream' : state.lastRevision
}

/**
 * Decides what a rejected append was, for a store with soft deletes and retention: `visible` is what readStream shows,
 * `hiddenRepeats` the batch's event IDs that the stream still holds but no longer shows. An idempotent repeat or a
 * visible conflict is decided by `classifyRejectedAppend`; a batch whose revision matched but whose IDs collide with
 * hidden events is an EventIdConflictError; anything else is a ConcurrencyError naming the stream's real state.
 */
export function classifyRejectedWrite(
  stream: string,
  batch: readonly NewEvent[],
  expected: ExpectedRevision,
  visible: readonly RecordedEvent[],
  state: StreamState,
  hiddenRepeats: readonly string[],
): AppendResult {
  try {
    return classifyRejectedAppend(stream, batch, expected, visible)
  } catch (error) {
    if (!(error instanceof ConcurrencyError)) throw error
    if (hiddenRepeats.length > 0 && matchesStreamState(expected, state)) throw new EventIdConflictError(stream, hiddenRepeats)
    throw new ConcurrencyError(stream, expected, actualRevisionOf(state))
  }
}

/** True when a stream whose metadata is at `actual` satisfies `expected`. */
export function matchesMetadataRevision(expected: ExpectedMetadataRevision, actual: bigint | 'no_metadata'): boolean {
  return expected === 'any' || expected === actual
}

const METADATA_FIELDS = new Set(['maxAge', 'maxCount', 'truncateBefore'])
/** PostgreSQL `integer`, and well inside what EventStoreDB's JSON metadata holds exactly. */
const MAX_RETENTION_NUMBER = 2_147_483_647

/**
 * Checks retention metadata before any I/O and returns it without undefined fields. Pure, and shared by every adapter
 * so they refuse the same input: maxAge and maxCount are whole numbers from 1 to 2^31-1, truncateBefore a bigint from
 * 0 to 2^53-1 (EventStoreDB keeps it as a JSON number).
 */
function validateStreamMetadata(stream: string, metadata: StreamMetadata): StreamMetadata {
  const where = `setStreamMetadata(${stream})`
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw new RangeError(`${where}: metadata must be an object`)
  const unknown = Object.keys(metadata).filter((key) => !METADATA_FIELDS.has(key))
  if (unknown.length > 0) throw new RangeError(`${where}: unknown metadata field ${unknown.join(', ')}; expected maxAge, maxCount or truncateBefore`)
  const { maxAge, maxCount, truncateBefore } = metadata
  for (const [name, value] of [['maxAge', maxAge], ['maxCount', maxCount]] as const) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1 || value > MAX_RETENTION_NUMBER)) {
      throw new RangeError(`${where}: ${name} must be a whole number from 1 to ${MAX_RETENTION_NUMBER}, got ${String(value)}`)
    }
  }
  if (truncateBefore !== undefined && (typeof truncateBefore !== 'bigint' || truncateBefore < 0n || truncateBefore > BigInt(Number.MAX_SAFE_INTEGER))) {
    throw new RangeError(`${where}: truncateBefore must be a bigint revision from 0 to ${Number.MAX_SAFE_INTEGER}, got ${String(truncateBefore)}`)
  }
  return {
    ...(maxAge === undefined ? {} : { maxAge }),
    ...(maxCount === undefined ? {} : { maxCount }),
    ...(truncateBefore === undefined ? {} : { truncateBefore }),
  }
}

/**
 * Checks a setStreamMetadata call before any I/O and returns the metadata without undefined fields and the expected
 * metadata revision ('any' unless given: a bigint >= 0, 'no_metadata' or 'any').
 */
export function validateMetadataWrite(
  stream: string,
  metadata: StreamMetadata,
  options: { expectedMetadataRevision?: ExpectedMetadataRevision },
): { metadata: StreamMetadata; expected: ExpectedMetadataRevision } {
  assertStreamName(stream)
  const valid = validateStreamMetadata(stream, metadata)
  const expected = options.expectedMetadataRevision ?? 'any'
  if (expected !== 'no_metadata' && expected !== 'any' && !(typeof expected === 'bigint' && expected >= 0n)) {
    throw new RangeError(`setStreamMetadata(${stream}): expectedMetadataRevision must be a bigint >= 0, 'no_metadata' or 'any', got ${String(expected)}`)
  }
  return { metadata: valid, expected }
}

/** Checks a delete or tombstone before any I/O: a stream name, and an expected revision that is a bigint >= 0, 'no_stream' or 'any'. */
export function assertDeleteArguments(stream: string, expected: ExpectedRevisionForDelete): void {
  assertStreamName(stream)
  if (expected === 'no_stream' || expected === 'any' || (typeof expected === 'bigint' && expected >= 0n)) return
  throw new RangeError(`deleting ${stream}: expectedRevision must be a bigint >= 0, 'no_stream' or 'any', got ${String(expected)}`)
}
