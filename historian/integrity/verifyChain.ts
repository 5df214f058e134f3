import { timingSafeEqual } from 'node:crypto'
import type { EventStore, RecordedEvent } from '../port'
import { toStoredEvent } from '../historian'
import { decisionOf } from '../lifecycle/lifecycleDecisions'
import { deriveLifecycle } from '../lifecycle/lifecycleState'
import { assertTenantId, complianceStreamName, complianceStreamTenant, parseTaskStreamName, taskStreamName } from '../streams'
import { anchorHash, linkHash, storedIntegrity } from './chainHash'
import type { TenantKeyRing } from './tenantKeyRing'

/** How a stream's hash chain can break. */
export const ChainBreakKind = {
  /** The event has no (well-formed) `metadata.integrity`: not written through the Historian, or the field was edited. */
  MissingIntegrity: 'missing_integrity',
  /** The event's revision is not the next one: an event before it was removed. */
  RevisionGap: 'revision_gap',
  /** Revision 0's `prevHash` is not the tenant-keyed anchor of the stream: another key or tenant, or a replaced start. */
  AnchorMismatch: 'anchor_mismatch',
  /** `prevHash` is not the previous event's `hash`: an event was removed, replaced or reordered, or `prevHash` was edited. */
  LinkBroken: 'link_broken',
  /** The stored `hash` does not match the event's content: its data, metadata, type, ID or revision was edited. */
  ContentEdited: 'content_edited',
  /** The event's global position is not after the previous revision's: rows were moved in the global order. */
  OutOfOrder: 'out_of_order',
} as const
export type ChainBreakKind = (typeof ChainBreakKind)[keyof typeof ChainBreakKind]

/**
 * Where a stream's hash chain first breaks. Plain JSON: revisions and positions are decimal strings. `expected` and
 * `found` never hold a hash computed with the key (only values already stored), so a report is no forging oracle.
 */
export interface ChainBreak {
  readonly streamName: string
  readonly taskId: string
  readonly kind: ChainBreakKind
  readonly revision: string
  readonly eventId: string
  readonly eventType: string
  readonly position: string
  readonly expected: string | null
  readonly found: string | null
  readonly message: string
}

/**
 * A stream whose first events are hidden by its retention rules (truncate-before, maxCount, maxAge, or a soft delete
 * after which it was written again): its chain is verified from the first visible event on, whose link to the hidden
 * events cannot be checked.
 */
export interface PartialStream {
  readonly streamName: string
  readonly taskId: string
  readonly firstRevision: string
  readonly retention: string
}

/** What `verifyChain` found: every chain intact, or the first broken link of each broken stream. Plain, serializable. */
export interface ChainVerification {
  readonly tenantId: string
  /** The task verified, or null when every task stream of the tenant was. */
  readonly taskId: string | null
  readonly intact: boolean
  readonly streamsChecked: number
  readonly eventsChecked: number
  readonly brokenStreams: number
  /** The first broken link of each broken stream, earliest global position first; at most MAX_REPORTED_BREAKS of them. */
  readonly breaks: readonly ChainBreak[]
  /** The earliest of `breaks`, or null when intact. */
  readonly firstBreak: ChainBreak | null
  /** Streams verified only from a later revision because retention hides their start; at most MAX_REPORTED_BREAKS. */
  readonly partialStreams: readonly PartialStream[]
  readonly checkedAt: string
}

/** Live counts while a tenant's log is walked. */
export interface VerifyProgress {
  readonly streamsChecked: number
  readonly eventsChecked: number
}

export interface VerifyChainOptions {
  /** Only read from: one stream (`readStream`) or the tenant's category (`readTenantLog`), never another tenant's. */
  readonly store: EventStore
  readonly keyRing: TenantKeyRing
  readonly tenantId: string
  /** Verify only this task's stream; omit to verify every task stream of the tenant. */
  readonly taskId?: string
  readonly pageSize?: number
  readonly onProgress?: (progress: VerifyProgress) => void
  readonly clock?: () => Date
}

/** Breaks listed in full; beyond this only `brokenStreams` counts them. */
export const MAX_REPORTED_BREAKS = 100
const DEFAULT_PAGE_SIZE = 1000

const sameHash = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))

/** Walks one stream's chain in revision order, from the tenant-keyed anchor, and names the first event that breaks it. */
class ChainWalker {
  private nextRevision = 0n
  private prevHash: string
  private prevPosition: bigint | undefined

  constructor(
    private readonly tenantKey: Buffer,
    readonly streamName: string,
    readonly taskId: string,
  ) {
    this.prevHash = anchorHash(tenantKey, streamName)
  }

  /** True until the first event has been checked. */
  get atStart(): boolean {
    return this.prevPosition === undefined
  }

  /** Starts the chain at `revision` instead of 0, from the link that event claims: for a start hidden by retention. */
  resumeAt(revision: bigint, prevHash: string): void {
    this.nextRevision = revision
    this.prevHash = prevHash
  }

  /** Checks the next event of the stream; returns how it breaks the chain, or undefined (and moves on past it). */
  check(event: RecordedEvent): ChainBreak | undefined {
    const at = (kind: ChainBreakKind, expected: string | null, found: string | null, message: string): ChainBreak => ({
      streamName: this.streamName,
      taskId: this.taskId,
      kind,
      revision: event.revision.toString(),
      eventId: event.eventId,
      eventType: event.type,
      position: event.position.toString(),
      expected,
      found,
      message,
    })
    const integrity = storedIntegrity(event.metadata)
    if (!integrity) {
      return at(ChainBreakKind.MissingIntegrity, null, null, 'no valid integrity metadata: not written through the Historian, or its integrity field was removed or edited')
    }
    if (event.revision !== this.nextRevision) {
      const message =
        event.revision < this.nextRevision
          ? `revision ${event.revision} appears where revision ${this.nextRevision} was expected: rows were reordered`
          : this.atStart
            ? `the stream starts at revision ${event.revision}: revisions 0 to ${event.revision - 1n} are missing and no retention rule hides them, so events were removed`
            : `revision ${this.nextRevision} is missing, the next stored event has revision ${event.revision}: an event was removed`
      return at(ChainBreakKind.RevisionGap, this.nextRevision.toString(), event.revision.toString(), message)
    }
    if (!sameHash(integrity.prevHash, this.prevHash)) {
      return this.nextRevision === 0n
        ? at(ChainBreakKind.AnchorMismatch, null, integrity.prevHash, "prevHash is not this tenant's anchor for the stream: written under another key or tenant, or its first event was replaced")
        : at(
            ChainBreakKind.LinkBroken,
            this.prevHash,
            integrity.prevHash,
            `prevHash is not the hash of revision ${this.nextRevision - 1n}: an event was removed, replaced or reordered, or prevHash was edited`,
          )
    }
    const recomputed = linkHash(this.tenantKey, integrity.prevHash, { ...event, streamName: this.streamName })
    if (!sameHash(recomputed, integrity.hash)) {
      return at(ChainBreakKind.ContentEdited, null, integrity.hash, "the stored hash does not match the event's content: its data, metadata, type, ID or revision was edited")
    }
    if (this.prevPosition !== undefined && event.position <= this.prevPosition) {
      return at(
        ChainBreakKind.OutOfOrder,
        `> ${this.prevPosition}`,
        event.position.toString(),
        `global position ${event.position} is not after revision ${this.nextRevision - 1n}'s position ${this.prevPosition}: rows were moved in the global order`,
      )
    }
    this.nextRevision += 1n
    this.prevHash = integrity.hash
    this.prevPosition = event.position
    return undefined
  }
}

/** What a break in the tenant's compliance stream shows where a task stream's break shows its task ID. */
export const COMPLIANCE_STREAM_LABEL = '(lifecycle decisions)'

/**
 * Why a stream's visible events may start at `firstRevision` > 0, from the lifecycle decisions recorded in its tenant's
 * compliance stream (docs/lifecycle.md), never from the store's own metadata: a stream_metadata row no decision
 * explains (written by SQL, say) explains nothing. Undefined if no decision explains it.
 */
async function retentionExplaining(store: EventStore, streamName: string, firstRevision: bigint): Promise<string | undefined> {
  // No decision is ever taken about a compliance stream: nothing explains a hidden start of one.
  if (complianceStreamTenant(streamName) !== undefined) return undefined
  const { tenantId } = parseTaskStreamName(streamName)
  const decisions = (await store.readStream(complianceStreamName(tenantId))).flatMap((recorded) => {
    const decision = decisionOf(toStoredEvent(recorded))
    return decision && decision.data.targetStream === streamName ? [decision.data] : []
  })
  const { metadata } = deriveLifecycle(decisions)
  const by = decisions.length === 0 ? '' : ` (decision ${decisions.at(-1)!.decisionId})`
  if (metadata.truncateBefore === firstRevision) return `truncate-before ${firstRevision}${by}`
  if (metadata.maxCount !== undefined) return `maxCount ${metadata.maxCount}${by}`
  if (metadata.maxAge !== undefined) return `maxAge ${metadata.maxAge} s${by}`
  return undefined
}

interface StreamCheck {
  readonly events: number
  readonly broken?: ChainBreak
  readonly partial?: PartialStream
}

/**
 * Verifies one stream in revision order, page by page; returns how many events were read, the first break if any, and
 * whether retention hides the stream's start (then the chain is checked from the first visible event).
 */
async function checkStream(store: EventStore, walker: ChainWalker, pageSize: number): Promise<StreamCheck> {
  let events = 0
  let partial: PartialStream | undefined
  let fromRevision = 0n
  for (;;) {
    const page = await store.readStream(walker.streamName, { fromRevision, maxCount: pageSize })
    for (const event of page) {
      events++
      const claimed = storedIntegrity(event.metadata)
      if (walker.atStart && event.revision > 0n && claimed) {
        const retention = await retentionExplaining(store, walker.streamName, event.revision)
        if (retention) {
          walker.resumeAt(event.revision, claimed.prevHash)
          partial = { streamName: walker.streamName, taskId: walker.taskId, firstRevision: event.revision.toString(), retention }
        }
      }
      const broken = walker.check(event)
      if (broken) return { events, broken, partial }
    }
    if (page.length < pageSize) return { events, partial }
    fromRevision = page[page.length - 1]!.revision + 1n
  }
}

const byPosition = (a: ChainBreak, b: ChainBreak) => {
  const diff = BigInt(a.position) - BigInt(b.position)
  return diff < 0n ? -1 : diff > 0n ? 1 : 0
}

/** What a walk found before the tenant's compliance stream is checked. */
interface WalkFindings {
  readonly breaks: ChainBreak[]
  readonly partialStreams: PartialStream[]
  readonly streamsChecked: number
  readonly eventsChecked: number
}

/**
 * Verifies a tenant's task streams from its log, read by the caller in global order from the start, one event at a time:
 * one small state per stream. A stream that looks broken there is re-read alone in revision order, so the break
 * reported is the same as `verify --task` reports. verifyChain walks the log with it; an export, which reads the same
 * log anyway, feeds it the events it reads, so the log is read once.
 */
export class TenantChainWalk {
  private readonly tenantId: string
  private readonly tenantKey: Buffer
  private readonly pageSize: number
  private readonly walkers = new Map<string, ChainWalker | 'settled'>()
  private readonly breaks: ChainBreak[] = []
  private readonly partialStreams: PartialStream[] = []
  private eventsChecked = 0

  constructor(private readonly options: Omit<VerifyChainOptions, 'taskId' | 'onProgress'>) {
    this.tenantId = assertTenantId(options.tenantId)
    this.tenantKey = options.keyRing.keyFor(this.tenantId)
    this.pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE
    if (!Number.isInteger(this.pageSize) || this.pageSize < 1) throw new RangeError(`verifyChain: pageSize must be a whole number >= 1, got ${this.pageSize}`)
  }

  get progress(): VerifyProgress {
    return { streamsChecked: this.walkers.size, eventsChecked: this.eventsChecked }
  }

  /** The tenant's next event in global order. */
  async check(event: RecordedEvent): Promise<void> {
    this.eventsChecked++
    let walker = this.walkers.get(event.streamName)
    if (walker === undefined) {
      const stream = parseTaskStreamName(event.streamName)
      if (stream.tenantId !== this.tenantId) throw new Error(`readTenantLog(${this.tenantId}) returned an event of ${event.streamName}, another tenant's stream`)
      walker = new ChainWalker(this.tenantKey, event.streamName, stream.taskId)
      this.walkers.set(event.streamName, walker)
    }
    if (walker === 'settled' || !walker.check(event)) return
    // Broken in global order, or its start is hidden by retention: check it alone in revision order, as --task would.
    this.walkers.set(event.streamName, 'settled')
    const precise = await checkStream(this.options.store, new ChainWalker(this.tenantKey, event.streamName, walker.taskId), this.pageSize)
    if (precise.broken) this.breaks.push(precise.broken)
    if (precise.partial) this.partialStreams.push(precise.partial)
  }

  /** Once the caller read the log to its end (or its snapshot): the tenant's compliance stream, then the result. */
  async finish(): Promise<ChainVerification> {
    const findings = { breaks: this.breaks, partialStreams: this.partialStreams, ...this.progress }
    return concludeVerification(this.options, this.tenantKey, null, this.pageSize, findings)
  }
}

/** Verifies the tenant's compliance stream as well, and shapes the result. */
async function concludeVerification(
  options: Omit<VerifyChainOptions, 'taskId' | 'onProgress'>,
  tenantKey: Buffer,
  taskId: string | null,
  pageSize: number,
  findings: WalkFindings,
): Promise<ChainVerification> {
  const tenantId = assertTenantId(options.tenantId)
  const breaks = [...findings.breaks]
  let { streamsChecked, eventsChecked } = findings
  // The tenant's lifecycle decisions explain hidden events (retentionExplaining), so their own chain is verified too.
  const decisions = await checkStream(options.store, new ChainWalker(tenantKey, complianceStreamName(tenantId), COMPLIANCE_STREAM_LABEL), pageSize)
  if (decisions.events > 0) {
    streamsChecked++
    eventsChecked += decisions.events
  }
  if (decisions.broken) breaks.push(decisions.broken)

  breaks.sort(byPosition)
  return {
    tenantId,
    taskId,
    intact: breaks.length === 0,
    streamsChecked,
    eventsChecked,
    brokenStreams: breaks.length,
    breaks: breaks.slice(0, MAX_REPORTED_BREAKS),
    firstBreak: breaks[0] ?? null,
    partialStreams: findings.partialStreams.slice(0, MAX_REPORTED_BREAKS),
    checkedAt: (options.clock ?? (() => new Date()))().toISOString(),
  }
}

/**
 * Verifies the hash chains of one tenant's task streams (or of one task's stream) with that tenant's key only:
 * revision 0 must chain from the tenant-keyed anchor, every later event from the hash of the one before, every hash
 * must match its event's content, and revisions and positions must run in order. Reports the first broken link of
 * each broken stream. The tenant's log is walked once in global order (TenantChainWalk), keeping one small state per
 * stream. The tenant's compliance stream (its lifecycle decisions, which explain hidden events) is verified as well,
 * and counted when it holds events; a break there shows COMPLIANCE_STREAM_LABEL as its task.
 */
export async function verifyChain(options: VerifyChainOptions): Promise<ChainVerification> {
  if (options.taskId === undefined) {
    const walk = new TenantChainWalk(options)
    let after: bigint | undefined
    for (;;) {
      const page = await options.store.readTenantLog(options.tenantId, { after, maxCount: options.pageSize ?? DEFAULT_PAGE_SIZE })
      if (page.length === 0) break
      for (const event of page) await walk.check(event)
      options.onProgress?.(walk.progress)
      after = page[page.length - 1]!.position
    }
    return walk.finish()
  }
  const tenantId = assertTenantId(options.tenantId)
  const tenantKey = options.keyRing.keyFor(tenantId)
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new RangeError(`verifyChain: pageSize must be a whole number >= 1, got ${pageSize}`)
  const streamName = taskStreamName(tenantId, options.taskId)
  const result = await checkStream(options.store, new ChainWalker(tenantKey, streamName, options.taskId), pageSize)
  return concludeVerification(options, tenantKey, options.taskId, pageSize, {
    breaks: result.broken ? [result.broken] : [],
    partialStreams: result.partial ? [result.partial] : [],
    streamsChecked: result.events > 0 ? 1 : 0,
    eventsChecked: result.events,
  })
}
