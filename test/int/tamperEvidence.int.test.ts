import { describe, expect, it } from 'vitest'
import { Historian } from '../../historian/historian'
import { anchorHash, linkHash, storedIntegrity } from '../../historian/integrity/chainHash'
import { ChainTailError, MissingIntegrityKeyError } from '../../historian/integrity/integrityErrors'
import { verifyChain, type ChainBreak, type ChainVerification } from '../../historian/integrity/verifyChain'
import { ConcurrencyError, type EventStore } from '../../historian/port'
import { complianceStreamName, taskStreamName } from '../../historian/streams'
import { recordLifecycleDecision } from '../../historian/lifecycle/lifecycleService'
import type { LifecycleDecision } from '../../historian/events'
import { DATABASE_BACKENDS, historianPerTest, randomKeyRing } from '../support/databases'
import { TaskEventFactory } from '../../dev/fixtures/eventFactory'

/** Runs one task through the Historian in four appends, as the pipeline would: revisions 0..6. */
async function appendTaskRun(historian: Historian, tenantId: string, taskId: string): Promise<void> {
  const f = new TaskEventFactory(tenantId, taskId)
  const batches = [
    [f.received()],
    [f.routingInvoked(), f.planCreated(['search', 'fetch'])],
    [f.toolExecuted('call-1', 'search'), f.toolFailed('call-2', 'fetch')],
    [f.synthesisInvoked(), f.completed({ totalTokens: 970, totalCostUsd: 0.012, toolCallsSucceeded: 1, toolCallsFailed: 1 })],
  ]
  for (const batch of batches) await historian.appendToTask(tenantId, taskId, batch, await historian.readTask(tenantId, taskId))
}

/** A store that fails the test if anything outside `tenantId`'s streams (its task streams and its compliance stream) is read. */
function tenantBoundStore(store: EventStore, tenantId: string): EventStore {
  return Object.assign(Object.create(store) as EventStore, {
    readStream(stream: string, options?: Parameters<EventStore['readStream']>[1]) {
      expect(stream.startsWith(`tenant_${tenantId}-`) || stream === complianceStreamName(tenantId), `read ${stream}`).toBe(true)
      return store.readStream(stream, options)
    },
    readTenantLog(tenant: string, options?: Parameters<EventStore['readTenantLog']>[1]) {
      expect(tenant).toBe(tenantId)
      return store.readTenantLog(tenant, options)
    },
    readAll: () => Promise.reject(new Error('verify must not read the whole log')),
    readEventType: () => Promise.reject(new Error('verify must not read across tenants')),
  })
}

describe.each(DATABASE_BACKENDS)('hash-chained task streams on $backend', ({ open }) => {
  const fixture = historianPerTest(open)
  const sql = (text: string, values: unknown[] = []) => fixture.database.pool.query(text, values)
  const stream = taskStreamName('acme', 'task-a')
  const decide = (decision: LifecycleDecision) =>
    recordLifecycleDecision(fixture.historian, { tenantId: 'acme', taskId: 'task-a', decision, decidedBy: 'dpo@example.test', reason: 'retention policy R-7' })

  /**
   * Verifies task-a three ways - alone, as part of the tenant's log, and the tenant's log in pages of 2 - and checks
   * they agree on the first broken link, which it returns.
   */
  async function firstBreak(): Promise<ChainBreak | null> {
    const store = tenantBoundStore(fixture.store, 'acme')
    const alone = await verifyChain({ store, keyRing: fixture.keyRing, tenantId: 'acme', taskId: 'task-a' })
    const tenant = await verifyChain({ store, keyRing: fixture.keyRing, tenantId: 'acme' })
    const paged = await verifyChain({ store, keyRing: fixture.keyRing, tenantId: 'acme', pageSize: 2 })
    expect(tenant.firstBreak).toEqual(alone.firstBreak)
    expect(paged.firstBreak).toEqual(alone.firstBreak)
    expect(tenant).toMatchObject({ intact: alone.intact, brokenStreams: alone.intact ? 0 : 1 })
    return alone.firstBreak
  }

  async function seed(): Promise<void> {
    await appendTaskRun(fixture.historian, 'acme', 'task-a')
    await appendTaskRun(fixture.historian, 'acme', 'task-b')
    await appendTaskRun(fixture.historian, 'globex', 'task-a')
  }

  const at = (revision: number) => [stream, String(revision)]

  it('chains every event from the tenant anchor through each append, and verifies intact', async () => {
    await seed()
    const events = await fixture.store.readStream(stream)
    expect(events.map((event) => event.revision)).toEqual([0n, 1n, 2n, 3n, 4n, 5n, 6n])
    const key = fixture.keyRing.keyFor('acme')
    let prevHash = anchorHash(key, stream)
    for (const event of events) {
      const integrity = storedIntegrity(event.metadata)!
      expect(integrity.prevHash).toBe(prevHash)
      expect(linkHash(key, prevHash, event)).toBe(integrity.hash)
      prevHash = integrity.hash
    }
    const result: ChainVerification = await verifyChain({ store: tenantBoundStore(fixture.store, 'acme'), keyRing: fixture.keyRing, tenantId: 'acme' })
    expect(result).toMatchObject({ tenantId: 'acme', taskId: null, intact: true, streamsChecked: 2, eventsChecked: 14, brokenStreams: 0, breaks: [], firstBreak: null })
    expect(JSON.parse(JSON.stringify(result))).toEqual(result)
    expect(await firstBreak()).toBeNull()
    // The Historian reads the link back with each event, and a TaskStream carries its tail for the next append.
    const task = await fixture.historian.readTask('acme', 'task-a')
    expect(task.lastHash).toBe(prevHash)
    expect(task.events[6]!.event.metadata.integrity?.hash).toBe(prevHash)
  })

  it('hashes what survives a jsonb round trip: reordered keys, rewritten numbers, unicode', async () => {
    const f = new TaskEventFactory('acme', 'task-a')
    const odd = f.toolExecuted('call-1', 'search')
    const result = { zeta: 1e-7, alpha: 1e21, mid: [0.1 + 0.2, -0, 250.5, 1.0], 'ü-key': 'naïve ✓ 😀', nested: { b: { d: 1, c: 2 }, a: null }, bb: true }
    const event = { ...odd.event, data: { ...odd.event.data, result } } as typeof odd.event
    expect(Object.keys(result)[0]).toBe('zeta')
    await fixture.historian.appendToTask('acme', 'task-a', [f.received(), { ...odd, event }], { revision: 'no_stream' })
    const stored = await sql(`select data::text as text, data->'result'->>'zeta' as zeta from events where stream_name = $1 and stream_revision = 1`, [stream])
    // jsonb did reorder the keys (shortest first) and rewrite the number's notation...
    expect(stored.rows[0].text.indexOf('"bb"')).toBeLessThan(stored.rows[0].text.indexOf('"zeta"'))
    expect(stored.rows[0].zeta).toBe('0.0000001')
    // ...and the chain still verifies.
    expect(await firstBreak()).toBeNull()
  })

  it('catches data edited in the middle of a stream (jsonb_set) at that revision', async () => {
    await seed()
    await sql(`update events set data = jsonb_set(data, '{result,hits}', '4') where stream_name = $1 and stream_revision = 3`, [stream])
    expect(await firstBreak()).toMatchObject({ streamName: stream, taskId: 'task-a', revision: '3', kind: 'content_edited', eventType: 'ToolCallExecuted', expected: null })
  })

  it('catches an event deleted from the middle as a revision gap after it', async () => {
    await seed()
    const [deleted] = (await fixture.store.readStream(stream)).filter((event) => event.revision === 3n)
    await sql('delete from events where stream_name = $1 and stream_revision = 3', [stream])
    const broken = await firstBreak()
    expect(broken).toMatchObject({ revision: '4', kind: 'revision_gap', expected: '3', found: '4' })
    expect(broken!.message).toMatch(/revision 3 is missing/)
    expect(broken!.eventId).not.toBe(deleted!.eventId)
  })

  it('catches a deletion whose later revisions were renumbered to close the gap', async () => {
    await seed()
    await sql('delete from events where stream_name = $1 and stream_revision = 3', [stream])
    await sql('update events set stream_revision = stream_revision - 1 where stream_name = $1 and stream_revision > 3', [stream])
    expect(await firstBreak()).toMatchObject({ revision: '3', kind: 'link_broken' })
  })

  it('catches two events swapped by their stream_revision', async () => {
    await seed()
    await sql('update events set stream_revision = 1000 where stream_name = $1 and stream_revision = 2', [stream])
    await sql('update events set stream_revision = 2 where stream_name = $1 and stream_revision = 3', [stream])
    await sql('update events set stream_revision = 3 where stream_name = $1 and stream_revision = 1000', [stream])
    const broken = await firstBreak()
    expect(broken).toMatchObject({ revision: '2', kind: 'link_broken', eventType: 'ToolCallExecuted' })
    const events = await fixture.store.readStream(stream)
    expect(broken!.expected).toBe(storedIntegrity(events[1]!.metadata)!.hash)
  })

  it('catches an event moved in the global order', async () => {
    await seed()
    await sql('update events set position = (select max(position) + 100 from events) where stream_name = $1 and stream_revision = 2', [stream])
    expect(await firstBreak()).toMatchObject({ revision: '3', kind: 'out_of_order' })
  })

  it('catches an edit of the last event', async () => {
    await seed()
    await sql(`update events set data = jsonb_set(data, '{answer}', '"Nothing happened."') where stream_name = $1 and stream_revision = 6`, [stream])
    expect(await firstBreak()).toMatchObject({ revision: '6', kind: 'content_edited', eventType: 'AgentTaskCompleted' })
  })

  it("catches an edited prevHash, an edited hash and a removed integrity field, each at the edited event", async () => {
    await seed()
    await sql(`update events set metadata = jsonb_set(metadata, '{integrity,prevHash}', to_jsonb(repeat('a', 64))) where stream_name = $1 and stream_revision = 4`, [stream])
    expect(await firstBreak()).toMatchObject({ revision: '4', kind: 'link_broken', found: 'a'.repeat(64) })
    await sql(`update events set metadata = jsonb_set(metadata, '{integrity,hash}', to_jsonb(repeat('b', 64))) where stream_name = $1 and stream_revision = 2`, [stream])
    expect(await firstBreak()).toMatchObject({ revision: '2', kind: 'content_edited', found: 'b'.repeat(64) })
    await sql(`update events set metadata = metadata - 'integrity' where stream_name = $1 and stream_revision = 1`, [stream])
    expect(await firstBreak()).toMatchObject({ revision: '1', kind: 'missing_integrity', expected: null, found: null })
  })

  it('catches a suffix forged consistently with a key other than the tenant key', async () => {
    await seed()
    const forgeKey = randomKeyRing().keyFor('acme')
    const events = await fixture.store.readStream(stream)
    let prevHash = storedIntegrity(events[4]!.metadata)!.hash
    for (const event of events.slice(5)) {
      const data = event.type === 'AgentTaskCompleted' ? { ...(event.data as object), answer: 'Forged.' } : event.data
      const hash = linkHash(forgeKey, prevHash, { ...event, data })
      await sql('update events set data = $3, metadata = $4 where stream_name = $1 and stream_revision = $2', [
        stream,
        event.revision.toString(),
        JSON.stringify(data),
        JSON.stringify({ ...event.metadata, integrity: { prevHash, hash } }),
      ])
      prevHash = hash
    }
    expect(await firstBreak()).toMatchObject({ revision: '5', kind: 'content_edited' })
  })

  it("reports the anchor broken under another master key, and for one tenant's stream copied into another tenant", async () => {
    await seed()
    const otherMaster = await verifyChain({ store: fixture.store, keyRing: randomKeyRing(), tenantId: 'acme', taskId: 'task-a' })
    expect(otherMaster.firstBreak).toMatchObject({ revision: '0', kind: 'anchor_mismatch', eventType: 'AgentTaskReceived' })

    // acme's events copied verbatim into tenant initech: initech's key (and anchor) never verifies them.
    await sql(
      `insert into events (stream_name, stream_revision, event_id, event_type, data, metadata)
       select 'tenant_initech-task-a', stream_revision, event_id, event_type, data,
              jsonb_set(metadata, '{tenantId}', '"initech"')
         from events where stream_name = $1 order by position`,
      [stream],
    )
    const copied = await verifyChain({ store: tenantBoundStore(fixture.store, 'initech'), keyRing: fixture.keyRing, tenantId: 'initech' })
    expect(copied).toMatchObject({ intact: false, streamsChecked: 1, brokenStreams: 1, firstBreak: { streamName: 'tenant_initech-task-a', revision: '0', kind: 'anchor_mismatch' } })
  })

  it("verifies one tenant without reading another's streams, and lists each broken stream's first break in log order", async () => {
    await seed()
    await sql(`update events set data = jsonb_set(data, '{input}', '"changed"') where stream_name = 'tenant_acme-task-b' and stream_revision = 0`)
    await sql(`update events set data = jsonb_set(data, '{answer}', '"changed"') where stream_name = $1 and stream_revision = 5`, [stream])
    const result = await verifyChain({ store: tenantBoundStore(fixture.store, 'acme'), keyRing: fixture.keyRing, tenantId: 'acme', pageSize: 3 })
    expect(result.breaks.map((broken) => [broken.streamName, broken.revision])).toEqual([at(5), ['tenant_acme-task-b', '0']])
    expect(result).toMatchObject({ intact: false, brokenStreams: 2, streamsChecked: 2, eventsChecked: 14 })
    expect(result.firstBreak).toEqual(result.breaks[0])
    const globex = await verifyChain({ store: tenantBoundStore(fixture.store, 'globex'), keyRing: fixture.keyRing, tenantId: 'globex' })
    expect(globex).toMatchObject({ intact: true, streamsChecked: 1, eventsChecked: 7 })
  })

  it('verifies a stream whose start retention hides from its first visible event on, and still catches what retention does not explain', async () => {
    await seed()
    await decide({ kind: 'truncate', before: 3 })
    const partial = await verifyChain({ store: tenantBoundStore(fixture.store, 'acme'), keyRing: fixture.keyRing, tenantId: 'acme', taskId: 'task-a' })
    // The four visible events of task-a, and the decision that explains the three hidden ones.
    expect(partial).toMatchObject({ intact: true, streamsChecked: 2, eventsChecked: 5, partialStreams: [{ streamName: stream, taskId: 'task-a', firstRevision: '3', retention: expect.stringMatching(/^truncate-before 3 \(decision [0-9a-f-]{36}\)$/) }] })
    const tenant = await verifyChain({ store: tenantBoundStore(fixture.store, 'acme'), keyRing: fixture.keyRing, tenantId: 'acme', pageSize: 2 })
    // Task streams a and b, and the compliance stream holding the decision.
    expect(tenant).toMatchObject({ intact: true, streamsChecked: 3, eventsChecked: 12, partialStreams: partial.partialStreams })

    await sql(`update events set data = jsonb_set(data, '{answer}', '"changed"') where stream_name = $1 and stream_revision = 5`, [stream])
    expect(await firstBreak()).toMatchObject({ revision: '5', kind: 'content_edited' })
    // A visible event removed right after the truncation point is a gap that truncate-before 3 does not explain.
    await sql('delete from events where stream_name = $1 and stream_revision = 3', [stream])
    expect(await firstBreak()).toMatchObject({ revision: '4', kind: 'revision_gap', expected: '0', found: '4' })
  })

  it('verifies the newest events that a maxCount rule keeps', async () => {
    await seed()
    await decide({ kind: 'retain', maxCount: 2 })
    const result = await verifyChain({ store: fixture.store, keyRing: fixture.keyRing, tenantId: 'acme' })
    expect(result).toMatchObject({ intact: true, eventsChecked: 10, partialStreams: [{ streamName: stream, firstRevision: '5', retention: expect.stringMatching(/^maxCount 2 \(decision /) }] })
    expect(await firstBreak()).toBeNull()
  })

  it('verifies the chain of the lifecycle decisions too: a decision edited by SQL is a break', async () => {
    await seed()
    await decide({ kind: 'truncate', before: 3 })
    expect(await verifyChain({ store: fixture.store, keyRing: fixture.keyRing, tenantId: 'acme', taskId: 'task-a' })).toMatchObject({ intact: true, streamsChecked: 2 })
    await sql(`update events set data = jsonb_set(data, '{decision,before}', '6') where stream_name = $1`, [complianceStreamName('acme')])
    const result = await verifyChain({ store: fixture.store, keyRing: fixture.keyRing, tenantId: 'acme', taskId: 'task-a' })
    expect(result.intact).toBe(false)
    expect(result.breaks).toContainEqual(expect.objectContaining({ streamName: complianceStreamName('acme'), taskId: '(lifecycle decisions)', kind: 'content_edited', revision: '0' }))
    // The edited decision (truncate before 6) no longer explains task-a starting at revision 3 either.
    expect(result.breaks).toContainEqual(expect.objectContaining({ streamName: stream, kind: 'revision_gap', revision: '3' }))
  })

  it('does not take retention rules that no recorded decision explains (a stream_metadata row written by SQL) as a reason for missing events', async () => {
    await seed()
    await sql(`insert into stream_metadata (stream_name, max_count) values ($1, 2)`, [stream])
    const result = await verifyChain({ store: fixture.store, keyRing: fixture.keyRing, tenantId: 'acme', taskId: 'task-a' })
    expect(result).toMatchObject({ intact: false, partialStreams: [] })
    expect(result.firstBreak).toMatchObject({ streamName: stream, revision: '5' })
  })

  it('reports live progress while walking a tenant log', async () => {
    await seed()
    const progress: { streamsChecked: number; eventsChecked: number }[] = []
    await verifyChain({ store: fixture.store, keyRing: fixture.keyRing, tenantId: 'acme', pageSize: 4, onProgress: (p) => progress.push(p) })
    expect(progress.map((p) => p.eventsChecked)).toEqual([4, 8, 12, 14])
    expect(progress.at(-1)).toEqual({ streamsChecked: 2, eventsChecked: 14 })
  })

  it('keeps the chain intact when two writers race for the same tail: the loser re-reads and chains after the winner', async () => {
    const f = new TaskEventFactory('acme', 'task-a')
    await fixture.historian.appendToTask('acme', 'task-a', [f.received()], { revision: 'no_stream' })
    const tail = await fixture.historian.readTask('acme', 'task-a')
    const first = f.routingInvoked()
    const second = f.routingFailed(true)
    const outcomes = await Promise.allSettled([fixture.historian.appendToTask('acme', 'task-a', [first], tail), fixture.historian.appendToTask('acme', 'task-a', [second], tail)])
    const rejected = outcomes.filter((outcome) => outcome.status === 'rejected')
    expect(rejected).toHaveLength(1)
    expect((rejected[0] as PromiseRejectedResult).reason).toBeInstanceOf(ConcurrencyError)
    const lost = outcomes[0]!.status === 'rejected' ? first : second
    await fixture.historian.appendToTask('acme', 'task-a', [lost], await fixture.historian.readTask('acme', 'task-a'))
    expect((await fixture.store.readStream(stream)).length).toBe(3)
    expect(await firstBreak()).toBeNull()
  })

  it('refuses to append without a key ring, or after an event with no chain link, and writes nothing', async () => {
    const f = new TaskEventFactory('acme', 'task-a')
    const keyless = new Historian(fixture.store)
    await expect(keyless.appendToTask('acme', 'task-a', [f.received()], { revision: 'no_stream' })).rejects.toThrow(MissingIntegrityKeyError)
    await expect(keyless.appendToTask('acme', 'task-a', [f.received()], { revision: 'no_stream' })).rejects.toThrow(/ANNALIST_INTEGRITY_KEY/)
    expect(await fixture.store.readStream(stream)).toHaveLength(0)

    await fixture.historian.appendToTask('acme', 'task-a', [f.received()], { revision: 'no_stream' })
    await sql(`update events set metadata = metadata - 'integrity' where stream_name = $1`, [stream])
    const tail = await fixture.historian.readTask('acme', 'task-a')
    expect(tail).toMatchObject({ revision: 0n, lastHash: undefined })
    await expect(fixture.historian.appendToTask('acme', 'task-a', [f.routingInvoked()], tail)).rejects.toThrow(ChainTailError)
    await expect(fixture.historian.appendToTask('acme', 'task-a', [f.routingInvoked()], { revision: 0n, lastHash: 'nope' })).rejects.toThrow(/lastHash must be 64 lowercase hex/)
    expect(await fixture.store.readStream(stream)).toHaveLength(1)
  })

  it('replaces whatever integrity link a caller supplies with the one computed from the tail', async () => {
    const f = new TaskEventFactory('acme', 'task-a')
    const received = f.received()
    const metadata = { ...received.event.metadata, integrity: { prevHash: 'a'.repeat(64), hash: 'b'.repeat(64) } }
    const spoofed = { ...received, event: { ...received.event, metadata } as typeof received.event }
    await fixture.historian.appendToTask('acme', 'task-a', [spoofed], { revision: 'no_stream' })
    const [stored] = await fixture.store.readStream(stream)
    expect(storedIntegrity(stored!.metadata)!.prevHash).toBe(anchorHash(fixture.keyRing.keyFor('acme'), stream))
    expect(await firstBreak()).toBeNull()
  })
})
