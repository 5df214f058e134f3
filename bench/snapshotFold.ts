import { createHash, randomUUID } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import type { Database } from '../historian/adapters/postgres/database'
import { PostgresEventStore } from '../historian/adapters/postgres/postgresEventStore'
import { CURRENT_SCHEMA_VERSION, ROUTES_OFFERED_IN_V1, validateEvent, type AnnalistEvent } from '../historian/events'
import { loadTaskState, type LoadedTaskState, type TaskStateDeps } from '../historian/loadTaskState'
import type { NewEvent } from '../historian/port'
import { PostgresSnapshotStore } from '../historian/snapshots/postgresSnapshotStore'
import { taskStreamName } from '../historian/streams'
import { interleaveRounds, median, timeMs } from './interleavedRounds'

/** What `measureSnapshotFold` found; every time is the median of interleaved rounds, in milliseconds. */
export interface SnapshotFoldFigures {
  /** Time to reconstruct the final state with snapshots / without them (goal <= 0.05). */
  readonly snapshotFoldRatio: number
  readonly foldMsWithSnapshots: number
  readonly foldMsWithoutSnapshots: number
  readonly streamEvents: number
  readonly snapshotEvery: number
  /** Events read and folded after the snapshot (the worst case for "every N": a full N). */
  readonly eventsFoldedWithSnapshot: number
  readonly snapshotsStored: number
  readonly rounds: number
  readonly store: Database['kind']
  /** Time to append the stream and to fold it once while saving its snapshots (not part of the ratio). */
  readonly buildMs: { readonly append: number; readonly snapshots: number }
}

export interface SnapshotFoldOptions {
  /** A migrated database to build the stream in (the caller owns it; use a scratch one). */
  readonly database: Database
  /** Events in the stream. Default 100,000. */
  readonly eventCount?: number
  /** Snapshot every N events. Default 50 (the default policy). */
  readonly snapshotEvery?: number
  /** Interleaved rounds of each variant. Default 3 (a fold of 100,000 events without snapshots takes seconds). */
  readonly rounds?: number
  readonly onProgress?: (line: string) => void
}

const APPEND_BATCH = 1_000
const TOOL_CALLS = ['t1', 't2', 't3', 't4', 't5', 't6', 't7', 't8'] as const
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

/**
 * The `n`-th event of a long agent loop on one task, valid against the current catalog: received, routed, planned
 * (eight tool calls), then tool calls run over and over (one in ten fails), as a long-running agent polling its tools.
 */
function loopEvent(tenantId: string, taskId: string, n: number): AnnalistEvent {
  const type: AnnalistEvent['type'] =
    n === 0 ? 'AgentTaskReceived' : n === 1 ? 'RoutingModelInvoked' : n === 2 ? 'PlanCreated' : n % 10 === 0 ? 'ToolCallFailed' : 'ToolCallExecuted'
  const workflowId = `agent-pipeline:${tenantId}:${taskId}`
  const toolCallId = TOOL_CALLS[n % TOOL_CALLS.length]!
  const metadata = {
    schemaVersion: CURRENT_SCHEMA_VERSION[type],
    tenantId,
    taskId,
    workflowId,
    runId: '3b7e0c1a-5f2d-4e8b-9a61-0d4c2b8f7e15',
    activityId: n < 3 ? ['receive', 'route', 'plan'][n]! : `tool:${toolCallId}:${n}`,
    attempt: 1,
    correlationId: workflowId,
    causationId: null,
    occurredAt: new Date(Date.UTC(2026, 1, 3, 9) + n * 250).toISOString(),
    classification: 'internal' as const,
  }
  const model = { provider: 'openai-compatible', modelId: 'gpt-4.1-mini', modelVersion: '2025-04-14' }
  const prompt = (id: string) => ({ templateId: id, templateVersion: '1.0.0', ref: `prompt-template://${id}@1.0.0#sha256:${sha256(id)}`, sha256: sha256(id) })
  const usage = { inputTokens: 420, outputTokens: 38, costUsd: 0.000231, reported: true }
  const reply = { finishReason: 'stop', systemFingerprint: null, callIndex: 0, structuredOutput: { dialect: 'json_schema', path: 'constrained' } as const }
  const tool = {
    toolCallId,
    toolName: 'lookup_account',
    parameters: { accountId: `ACC-${1000 + (n % 97)}` },
    idempotencyKey: sha256(`${workflowId}:${n}`),
    sideEffectId: null,
    latencyMs: 12 + (n % 40),
  }
  const data =
    type === 'AgentTaskReceived'
      ? { input: 'Watch account ACC-1042 and report every balance change', inputSha256: sha256('watch'), requestedBy: 'bench' }
      : type === 'RoutingModelInvoked'
        ? { model, prompt: prompt('route-task'), responseText: '{"route":"account"}', usage, latencyMs: 310, ...reply, route: 'account', candidateRoutes: [...ROUTES_OFFERED_IN_V1] }
        : type === 'PlanCreated'
          ? { model, prompt: prompt('plan-tool-calls'), responseText: 'plan', usage, latencyMs: 820, ...reply, toolCalls: TOOL_CALLS.map((id) => ({ toolCallId: id, toolName: 'lookup_account', parameters: { accountId: 'ACC-1042' } })) }
          : type === 'ToolCallFailed'
            ? { ...tool, errorCode: 'TOOL_TIMEOUT', message: 'account service did not answer within 5 s' }
            : { ...tool, result: { accountId: 'ACC-1042', balanceCents: 1_204_500 + n, currency: 'EUR', asOf: metadata.occurredAt } }
  return validateEvent({ type, data, metadata })
}

function toNewEvent(event: AnnalistEvent): NewEvent {
  return { eventId: randomUUID(), type: event.type, data: event.data, metadata: event.metadata }
}

/** Both answers as JSON, so a state read back from a jsonb snapshot compares equal to one folded from events. */
function sameState(a: LoadedTaskState, b: LoadedTaskState): boolean {
  return a.revision === b.revision && isDeepStrictEqual(JSON.parse(JSON.stringify(a.state)), JSON.parse(JSON.stringify(b.state)))
}

/**
 * Benchmark `snapshotFoldRatio`: builds one task stream of `eventCount` events (appended through the port in batches
 * of 1,000), saves its snapshots every `snapshotEvery` events by folding it once, then times, interleaved in one run,
 * reconstructing its final state with `loadTaskState` with snapshots and without. Both go the real way: read by
 * revision, `readEvent` (upcast + validate), `evolve`. The last snapshot is a full `snapshotEvery` events before the
 * end (the worst case of "every N"), and neither variant saves snapshots while measured. Throws if the two disagree.
 */
export async function measureSnapshotFold(options: SnapshotFoldOptions): Promise<SnapshotFoldFigures> {
  const eventCount = options.eventCount ?? 100_000
  const snapshotEvery = options.snapshotEvery ?? 50
  const rounds = options.rounds ?? 3
  const progress = options.onProgress ?? (() => undefined)
  if (!Number.isSafeInteger(eventCount) || eventCount < 2) throw new RangeError(`eventCount must be a whole number >= 2, got ${String(eventCount)}`)
  if (!Number.isSafeInteger(snapshotEvery) || snapshotEvery < 1 || snapshotEvery >= eventCount) {
    throw new RangeError(`snapshotEvery must be a whole number from 1 to eventCount - 1, got ${String(snapshotEvery)}`)
  }
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new RangeError(`rounds must be a whole number >= 1, got ${String(rounds)}`)

  const store = new PostgresEventStore(options.database)
  const snapshots = new PostgresSnapshotStore(options.database)
  const tenantId = 'bench_fold'
  const taskId = `loop-${randomUUID().slice(0, 8)}`
  const streamName = taskStreamName(tenantId, taskId)
  try {
    progress(`snapshot fold: appending ${eventCount} events to ${streamName} in batches of ${APPEND_BATCH}`)
    const append = await timeMs(async () => {
      for (let from = 0; from < eventCount; from += APPEND_BATCH) {
        const batch = Array.from({ length: Math.min(APPEND_BATCH, eventCount - from) }, (_, i) => toNewEvent(loopEvent(tenantId, taskId, from + i)))
        await store.appendToStream(streamName, batch, { expectedRevision: from === 0 ? 'no_stream' : BigInt(from - 1) })
      }
    })

    // Snapshots every N up to N events before the end: the final state then needs the last N events on top.
    const lastSnapshotRevision = BigInt(eventCount - snapshotEvery - 1)
    let snapshotsStored = 0
    const build = await timeMs(async () => {
      const built = await loadTaskState({ store, snapshots, snapshotPolicy: { everyEvents: snapshotEvery, everyBytes: Number.MAX_SAFE_INTEGER } }, tenantId, taskId, {
        at: { revision: lastSnapshotRevision },
      })
      snapshotsStored = built.snapshotsSaved
    })
    progress(`snapshot fold: ${snapshotsStored} snapshots saved (every ${snapshotEvery} events)`)

    const variants: Record<'with' | 'without', TaskStateDeps> = {
      with: { store, snapshots, snapshotPolicy: false },
      without: { store },
    }
    const answers: Partial<Record<'with' | 'without', LoadedTaskState>> = {}
    const times = await interleaveRounds(['without', 'with'] as const, rounds, async (variant, round) => {
      const ms = await timeMs(async () => {
        answers[variant] = await loadTaskState(variants[variant], tenantId, taskId)
      })
      progress(`  round ${round + 1}/${rounds} ${variant.padEnd(7)} ${ms.toFixed(1)} ms`)
      return ms
    })
    const withSnapshots = answers.with!
    const withoutSnapshots = answers.without!
    if (!withSnapshots.usedSnapshot) throw new Error('snapshot fold: the load with snapshots did not use one')
    if (!sameState(withSnapshots, withoutSnapshots)) throw new Error('snapshot fold: the state with snapshots differs from the state without them')
    const foldMsWith = median(times.with)
    const foldMsWithout = median(times.without)
    return {
      snapshotFoldRatio: foldMsWith / foldMsWithout,
      foldMsWithSnapshots: foldMsWith,
      foldMsWithoutSnapshots: foldMsWithout,
      streamEvents: eventCount,
      snapshotEvery,
      eventsFoldedWithSnapshot: withSnapshots.eventsFolded,
      snapshotsStored,
      rounds,
      store: options.database.kind,
      buildMs: { append, snapshots: build },
    }
  } finally {
    await store.close()
  }
}
