import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import type { EventStore } from '../../historian/port'
import { taskStreamName } from '../../historian/streams'
import {
  CSV_EXPORT_COLUMNS,
  ExportFormatError,
  exportTenant,
  verifyExport,
  type ExportDeps,
  type ExportHeader,
  type ExportManifest,
  type ExportQuery,
  type ExportRecord,
} from '../../projections/export/tenantExport'
import { appendAuditScenario } from '../support/auditFixtures'
import { DATABASE_BACKENDS, historianPerTest, randomKeyRing } from '../support/databases'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'
import { V1_EXPORT_FILE, V1_EXPORT_KEY } from '../support/v1Export'
import { waitUntil } from '../support/waitUntil'

const lines = (text: string) => text.trimEnd().split('\n')
const joinLines = (parts: readonly string[]) => `${parts.join('\n')}\n`

/** A JSONL export as text, and its header, records and manifest parsed back. */
interface ExportedText {
  readonly text: string
  readonly header: ExportHeader
  readonly records: ExportRecord[]
  readonly manifest: ExportManifest
}

/** Drains an export's chunks into one text. */
async function textOf(chunks: AsyncIterable<string>): Promise<string> {
  let text = ''
  for await (const chunk of chunks) text += chunk
  return text
}

async function exportJsonl(deps: ExportDeps, query: ExportQuery): Promise<ExportedText> {
  const text = await textOf(exportTenant(deps, query, 'jsonl'))
  const all = lines(text).map((line) => JSON.parse(line) as unknown)
  return { text, header: all[0] as ExportHeader, records: all.slice(1, -1) as ExportRecord[], manifest: all.at(-1) as ExportManifest }
}

/** Splits one CSV line (RFC 4180, no line breaks inside fields: JSON text never has raw newlines) into its fields. */
function csvFields(line: string): string[] {
  const fields: string[] = []
  const field = /("(?:[^"]|"")*"|[^,]*)(,|$)/g
  for (let match = field.exec(line); match && match.index < line.length; match = field.exec(line)) {
    const text = match[1]!
    fields.push(text.startsWith('"') ? text.slice(1, -1).replaceAll('""', '"') : text)
    if (match[2] === '') break
  }
  return fields
}

/** Waits until the clock has moved past `since` by a few milliseconds, so that later appends get later recordedAt times. */
async function clockPast(since: Date): Promise<void> {
  await waitUntil(`the clock to pass ${since.toISOString()} by 3 ms`, () => Date.now() > since.getTime() + 3, { timeoutMs: 5_000, intervalMs: 1 })
}

describe.each(DATABASE_BACKENDS)('tenant export on $backend', ({ open }) => {
  const fixture = historianPerTest(open)
  const exportOf = (tenantId: string, window: { from?: string | Date; to?: string | Date } = {}): Promise<ExportedText> =>
    exportJsonl({ store: fixture.store, keyRing: fixture.keyRing }, { tenantId, ...window })

  it('exports every event of the tenant as stored, numbered 1..n, between a header and a manifest holding counts, streams and the chain verification', async () => {
    await appendAuditScenario(fixture.historian, 'globex')
    await appendAuditScenario(fixture.historian, 'acme')
    await appendAuditScenario(fixture.historian, 'initech')
    const { header, manifest, records, text } = await exportOf('acme')
    expect(records).toHaveLength(17)
    expect(records.every((record) => record.stream.startsWith('tenant_acme-'))).toBe(true)
    // The tenant sequence, whatever globex appended before and after: no global position is in the export.
    expect(records.map((record) => record.sequence)).toEqual(Array.from({ length: 17 }, (_, index) => String(index + 1)))
    expect(text).not.toMatch(/"position"/)
    const tenantLog = await fixture.store.readTenantLog('acme')
    expect(records.map((record) => record.eventId)).toEqual(tenantLog.map((event) => event.eventId))
    expect(header).toMatchObject({
      format: 'annalist-export',
      formatVersion: 2,
      part: 'header',
      tenantId: 'acme',
      window: { from: null, to: null, on: 'recordedAt' },
      snapshot: { eventId: tenantLog.at(-1)!.eventId, sequence: '17' },
    })
    const stored = await fixture.store.readStream(taskStreamName('acme', 'task-a'))
    expect(records.filter((record) => record.stream === 'tenant_acme-task-a')).toEqual(
      stored.map(
        (event): ExportRecord => ({
          sequence: String(event.tenantSequence),
          stream: event.streamName,
          revision: event.revision.toString(),
          eventId: event.eventId,
          type: event.type,
          schemaVersion: event.metadata.schemaVersion as number,
          recordedAt: event.recordedAt.toISOString(),
          data: event.data,
          metadata: event.metadata,
        }),
      ),
    )
    expect(records[0]!.metadata.integrity).toMatchObject({ prevHash: expect.stringMatching(/^[0-9a-f]{64}$/), hash: expect.stringMatching(/^[0-9a-f]{64}$/) })
    expect(manifest).toMatchObject({
      format: 'annalist-export',
      formatVersion: 2,
      part: 'manifest',
      counts: { records: 17, streams: 3, byType: { AgentTaskReceived: 3, RoutingModelFailed: 2, SynthesisModelInvoked: 2 } },
      chainVerification: { tenantId: 'acme', intact: true, streamsChecked: 3, eventsChecked: 17 },
    })
    expect(manifest.streams).toEqual([
      { stream: 'tenant_acme-task-a', taskId: 'task-a', firstRevision: '0', lastRevision: '7', records: 8, chain: 'intact', verifiedFromRevision: '0', chainBreak: null },
      { stream: 'tenant_acme-task-b', taskId: 'task-b', firstRevision: '0', lastRevision: '3', records: 4, chain: 'intact', verifiedFromRevision: '0', chainBreak: null },
      { stream: 'tenant_acme-task-c', taskId: 'task-c', firstRevision: '0', lastRevision: '4', records: 5, chain: 'intact', verifiedFromRevision: '0', chainBreak: null },
    ])

    const verified = verifyExport(text, 'jsonl', fixture.keyRing)
    expect(verified).toMatchObject({ formatVersion: 2, ok: true, tenantId: 'acme', records: 17, streams: 3, chainIntactAtExport: true, problems: [], firstProblem: null, unanchoredStreams: [] })
  })

  it('fails verification naming the stream and revision when a byte of a record changes, or a record is dropped', async () => {
    await appendAuditScenario(fixture.historian, 'acme')
    const { text } = await exportOf('acme')
    const all = lines(text)
    const toolLine = all.findIndex((line) => line.includes('"type":"ToolCallExecuted"'))
    expect(all[toolLine]).toContain('"hits":3')

    const edited = verifyExport(joinLines(all.map((line, index) => (index === toolLine ? line.replace('"hits":3', '"hits":4') : line))), 'jsonl', fixture.keyRing)
    expect(edited.ok).toBe(false)
    expect(edited.firstProblem).toMatchObject({ kind: 'content_edited', stream: 'tenant_acme-task-a', revision: '3', line: toolLine + 1 })
    expect(edited.problems.map((problem) => problem.kind)).toEqual(['records_digest_mismatch', 'content_edited'])

    const dropped = verifyExport(joinLines(all.filter((_, index) => index !== toolLine)), 'jsonl', fixture.keyRing)
    expect(dropped.firstProblem).toMatchObject({ kind: 'revision_gap', stream: 'tenant_acme-task-a', revision: '4' })
    expect(dropped.problems.map((problem) => problem.kind)).toEqual(['records_digest_mismatch', 'count_mismatch', 'revision_gap'])

    // Dropping a stream's last record leaves a valid chain: the manifest's revisions and counts catch it.
    const lastOfB = all.slice(0, -1).findLastIndex((line) => line.includes('"stream":"tenant_acme-task-b"'))
    const truncated = verifyExport(joinLines(all.filter((_, index) => index !== lastOfB)), 'jsonl', fixture.keyRing)
    expect(truncated.firstProblem).toMatchObject({ kind: 'stream_mismatch', stream: 'tenant_acme-task-b' })
    expect(truncated.firstProblem!.message).toMatch(/revisions 0 to 2; the manifest says 4, revisions 0 to 3/)

    // Two records swapped: revision 2 now follows revision 0.
    const swapped = [...all]
    ;[swapped[2], swapped[3]] = [swapped[3]!, swapped[2]!]
    expect(verifyExport(joinLines(swapped), 'jsonl', fixture.keyRing).firstProblem).toMatchObject({ stream: 'tenant_acme-task-a', revision: '2', kind: 'revision_gap' })

    // The manifest's counts edited to match a dropped record: the HMAC over header and manifest no longer matches.
    const header = JSON.parse(all[0]!) as ExportHeader
    const manifest = JSON.parse(all.at(-1)!) as ExportManifest
    const forged = JSON.stringify({ ...manifest, counts: { ...manifest.counts, records: manifest.counts.records - 1 } })
    const forgedResult = verifyExport(joinLines([...all.slice(0, -1).filter((_, index) => index !== lastOfB), forged]), 'jsonl', fixture.keyRing)
    expect(forgedResult.problems.map((problem) => problem.kind)).toContain('manifest_altered')
    // So does the header's window, edited to pass the export off as another one.
    const reWindowed = JSON.stringify({ ...header, window: { ...header.window, from: '2026-01-01T00:00:00.000Z' } })
    expect(verifyExport(joinLines([reWindowed, ...all.slice(1)]), 'jsonl', fixture.keyRing).problems.map((problem) => problem.kind)).toEqual(['manifest_altered'])

    // An export cut short (no manifest line) is refused, not verified.
    expect(() => verifyExport(joinLines(all.slice(0, -1)), 'jsonl', fixture.keyRing)).toThrow(/truncated export: no manifest line/)
    expect(() => verifyExport(joinLines(all.slice(0, 1)), 'jsonl', fixture.keyRing)).toThrow(/truncated export: no manifest line/)
    // Unreadable input is an error, not a verdict.
    expect(() => verifyExport('hello\n', 'jsonl', fixture.keyRing)).toThrow(ExportFormatError)
    expect(() => verifyExport(joinLines([JSON.stringify({ ...header, tenantId: 'Not-A-Tenant' }), ...all.slice(1)]), 'jsonl', fixture.keyRing)).toThrow(
      /header tenantId: invalid tenant ID/,
    )
    expect(() => verifyExport(joinLines([...all.slice(0, -1), JSON.stringify({ ...manifest, recordsSha256: 'x' })]), 'jsonl', fixture.keyRing)).toThrow(/manifest recordsSha256/)
    // A malformed record line is a problem of the export.
    const garbled = verifyExport(joinLines([...all.slice(0, 3), '{"sequence":', ...all.slice(4)]), 'jsonl', fixture.keyRing)
    expect(garbled.problems.map((problem) => problem.kind)).toContain('malformed_record')
  })

  it('fails under another key, and for records spliced in from another tenant', async () => {
    await appendAuditScenario(fixture.historian, 'acme')
    await appendAuditScenario(fixture.historian, 'globex')
    const acme = (await exportOf('acme')).text
    const otherKey = verifyExport(acme, 'jsonl', randomKeyRing())
    expect(otherKey.ok).toBe(false)
    expect(otherKey.problems.map((problem) => problem.kind)).toEqual(['manifest_altered', 'anchor_mismatch', 'anchor_mismatch', 'anchor_mismatch'])

    const globexLines = lines((await exportOf('globex')).text)
    const acmeLines = lines(acme)
    // A globex record in place of acme's task-a revision 1 (same task ID and revision in the other tenant).
    const spliced = acmeLines.map((line, index) => (index === 2 ? globexLines[2]! : line))
    const result = verifyExport(joinLines(spliced), 'jsonl', fixture.keyRing)
    expect(result.ok).toBe(false)
    expect(result.firstProblem).toMatchObject({ kind: 'foreign_record', stream: 'tenant_globex-task-a', line: 3 })
    // Renamed to acme's stream, it still fails: it chains from globex's revision 0, under globex's key.
    const renamed = acmeLines.map((line, index) => (index === 2 ? globexLines[2]!.replaceAll('tenant_globex-', 'tenant_acme-') : line))
    expect(verifyExport(joinLines(renamed), 'jsonl', fixture.keyRing).firstProblem).toMatchObject({ kind: 'link_broken', stream: 'tenant_acme-task-a', revision: '1' })
    // Even with its prevHash set to acme's link, its own hash does not recompute under acme's key.
    const acmePrev = (JSON.parse(acmeLines[1]!) as ExportRecord).metadata.integrity as { hash: string }
    const relinked = JSON.parse(globexLines[2]!.replaceAll('tenant_globex-', 'tenant_acme-')) as { metadata: { integrity: { prevHash: string } } }
    relinked.metadata.integrity.prevHash = acmePrev.hash
    const withRelinked = acmeLines.map((line, index) => (index === 2 ? JSON.stringify(relinked) : line))
    expect(verifyExport(joinLines(withRelinked), 'jsonl', fixture.keyRing).firstProblem).toMatchObject({ kind: 'content_edited', stream: 'tenant_acme-task-a', revision: '1' })
  })

  it('exports a window of recording times whose inner links verify, and says which streams start after revision 0', async () => {
    const f = new TaskEventFactory('acme', 'task-w')
    const g = new TaskEventFactory('acme', 'task-x')
    await appendTaskEvents(fixture.historian, 'acme', 'task-w', [f.received(), f.routingInvoked()])
    const [firstBatchEnd] = await fixture.store.readStream(taskStreamName('acme', 'task-w'), { direction: 'backwards', maxCount: 1 })
    await clockPast(firstBatchEnd!.recordedAt)
    await appendTaskEvents(fixture.historian, 'acme', 'task-w', [f.planCreated(['search']), f.toolExecuted('call-1', 'search')])
    await appendTaskEvents(fixture.historian, 'acme', 'task-x', [g.received()])
    const [secondBatch] = await fixture.store.readStream(taskStreamName('acme', 'task-w'), { fromRevision: 2n, maxCount: 1 })
    const [secondEnd] = await fixture.store.readStream(taskStreamName('acme', 'task-x'), { direction: 'backwards', maxCount: 1 })
    await clockPast(secondEnd!.recordedAt)
    await appendTaskEvents(fixture.historian, 'acme', 'task-w', [f.synthesisInvoked()])
    const [lastBatch] = await fixture.store.readStream(taskStreamName('acme', 'task-w'), { fromRevision: 4n, maxCount: 1 })

    const exported = await exportOf('acme', { from: secondBatch!.recordedAt, to: lastBatch!.recordedAt })
    expect(exported.records.map((record) => `${record.stream}@${record.revision}`)).toEqual(['tenant_acme-task-w@2', 'tenant_acme-task-w@3', 'tenant_acme-task-x@0'])
    expect(exported.manifest.streams.map((entry) => [entry.stream, entry.firstRevision, entry.lastRevision])).toEqual([
      ['tenant_acme-task-w', '2', '3'],
      ['tenant_acme-task-x', '0', '0'],
    ])
    // The chain verification covers the whole streams, not just the window.
    expect(exported.manifest.chainVerification).toMatchObject({ intact: true, eventsChecked: 6 })
    expect(exported.header.window).toEqual({ from: secondBatch!.recordedAt.toISOString(), to: lastBatch!.recordedAt.toISOString(), on: 'recordedAt' })
    const verified = verifyExport(exported.text, 'jsonl', fixture.keyRing)
    expect(verified).toMatchObject({ ok: true, records: 3, unanchoredStreams: [{ stream: 'tenant_acme-task-w', firstRevision: '2' }] })

    const empty = await exportOf('acme', { from: '2030-01-01', to: '2030-02-01' })
    expect(empty.records).toEqual([])
    expect(verifyExport(empty.text, 'jsonl', fixture.keyRing)).toMatchObject({ ok: true, records: 0, streams: 0 })
  })

  it('keeps each stream contiguous in a window: an event recorded outside it is held back until a later one of its stream is inside, else dropped', async () => {
    await appendAuditScenario(fixture.historian, 'acme')
    // recordedAt is not covered by the chain: moved by SQL, it stands for a store clock that stepped while writing.
    await fixture.database.pool.query(
      `update events set recorded_at = '2030-01-01T00:00:00Z'
       where (stream_name = 'tenant_acme-task-a' and stream_revision = 3) or (stream_name = 'tenant_acme-task-c' and stream_revision = 4)`,
    )
    const exported = await exportOf('acme', { from: '2026-01-01T00:00:00Z', to: '2029-01-01T00:00:00Z' })
    const revisionsOf = (stream: string) => exported.records.filter((record) => record.stream === stream).map((record) => record.revision)
    expect(revisionsOf('tenant_acme-task-a')).toEqual(['0', '1', '2', '3', '4', '5', '6', '7'])
    expect(revisionsOf('tenant_acme-task-c')).toEqual(['0', '1', '2', '3'])
    expect(exported.records.map((record) => Number(record.sequence))).toEqual(Array.from({ length: 16 }, (_, index) => index + 1))
    expect(exported.manifest.streams.find((entry) => entry.stream === 'tenant_acme-task-c')).toMatchObject({ firstRevision: '0', lastRevision: '3', records: 4 })
    expect(verifyExport(exported.text, 'jsonl', fixture.keyRing)).toMatchObject({ ok: true, records: 16, streams: 3 })
  })

  it('reports tampering in the database at export time, and the export then fails verification too', async () => {
    await appendAuditScenario(fixture.historian, 'acme')
    await fixture.database.pool.query(
      `update events set data = jsonb_set(data, '{latencyMs}', '1') where stream_name = 'tenant_acme-task-b' and stream_revision = 1`,
    )
    const exported = await exportOf('acme')
    expect(exported.manifest.chainVerification).toMatchObject({ intact: false, brokenStreams: 1 })
    expect(exported.manifest.streams.find((entry) => entry.stream === 'tenant_acme-task-b')).toMatchObject({
      chain: 'broken',
      chainBreak: { kind: 'content_edited', revision: '1' },
    })
    expect(exported.manifest.streams.filter((entry) => entry.chain === 'intact')).toHaveLength(2)
    // The break is reported without its global position, as everything in a version 2 export.
    expect(exported.text).not.toMatch(/"position"/)
    const verified = verifyExport(exported.text, 'jsonl', fixture.keyRing)
    expect(verified).toMatchObject({ ok: false, chainIntactAtExport: false, firstProblem: { kind: 'content_edited', stream: 'tenant_acme-task-b', revision: '1' } })
  })

  it('renders CSV: the header as a leading # line, then one row per event with data and metadata as JSON text, then the manifest as a # line', async () => {
    await appendAuditScenario(fixture.historian, 'acme')
    const exported = await exportOf('acme')
    const csv = await textOf(exportTenant({ store: fixture.store, keyRing: fixture.keyRing }, { tenantId: 'acme' }, 'csv'))
    const [headerLine, columns, ...rest] = lines(csv)
    const manifestLine = rest.pop()!
    expect(headerLine!.startsWith('#')).toBe(true)
    expect(JSON.parse(headerLine!.slice(1)) as ExportHeader).toMatchObject({ ...exported.header, exportedAt: expect.any(String) })
    expect(JSON.parse(manifestLine.slice(1)) as ExportManifest).toMatchObject({ counts: exported.manifest.counts, recordsSha256: exported.manifest.recordsSha256 })
    expect(columns).toBe(CSV_EXPORT_COLUMNS.join(','))
    expect(rest).toHaveLength(exported.records.length)
    rest.forEach((row, index) => {
      const record = exported.records[index]!
      const [sequence, stream, revision, eventId, type, schemaVersion, recordedAt, data, metadata] = csvFields(row)
      expect([sequence, stream, revision, eventId, type, schemaVersion, recordedAt]).toEqual([
        record.sequence,
        record.stream,
        record.revision,
        record.eventId,
        record.type,
        String(record.schemaVersion),
        record.recordedAt,
      ])
      expect(JSON.parse(data!)).toEqual(record.data)
      expect(JSON.parse(metadata!)).toEqual(record.metadata)
    })
  })

  it('stops at the snapshot taken when it began: events appended while it streams are not in it', async () => {
    await appendAuditScenario(fixture.historian, 'acme')
    const chunks = exportTenant({ store: fixture.store, keyRing: fixture.keyRing, pageSize: 4 }, { tenantId: 'acme' }, 'jsonl')
    let text = (await chunks.next()).value as string
    const late = new TaskEventFactory('acme', 'task-late')
    await appendTaskEvents(fixture.historian, 'acme', 'task-late', [late.received(), late.routingInvoked()])
    text += await textOf(chunks)
    const records = lines(text).slice(1, -1).map((line) => JSON.parse(line) as ExportRecord)
    expect(records.map((record) => record.sequence)).toEqual(Array.from({ length: 17 }, (_, index) => String(index + 1)))
    expect(records.some((record) => record.stream === 'tenant_acme-task-late')).toBe(false)
    expect(verifyExport(text, 'jsonl', fixture.keyRing)).toMatchObject({ ok: true, records: 17, streams: 3 })
    // The chain verification in the manifest covers the same prefix of the log.
    expect((JSON.parse(lines(text).at(-1)!) as ExportManifest).chainVerification).toMatchObject({ intact: true, eventsChecked: 17 })
  })

  it('leaves no manifest line when the store fails part way, and such an export is refused as truncated', async () => {
    await appendAuditScenario(fixture.historian, 'acme')
    let pages = 0
    const failing: EventStore = Object.assign(Object.create(fixture.store) as EventStore, {
      readTenantLog: (tenantId: string, options?: { after?: bigint; maxCount?: number }) => {
        if (++pages === 3) return Promise.reject(new Error('the store went away'))
        return fixture.store.readTenantLog(tenantId, options)
      },
    })
    let text = ''
    await expect(
      (async () => {
        for await (const chunk of exportTenant({ store: failing, keyRing: fixture.keyRing, pageSize: 4 }, { tenantId: 'acme' }, 'jsonl')) text += chunk
      })(),
    ).rejects.toThrow('the store went away')
    expect(lines(text)).toHaveLength(1 + 8)
    expect(() => verifyExport(text, 'jsonl', fixture.keyRing)).toThrow(/^not a readable Annalist export \(line 9\): truncated export: no manifest line/)
  })
})

describe('a format version 1 export made before version 2', () => {
  it('still verifies, and still fails when a byte of it changes', () => {
    const text = readFileSync(V1_EXPORT_FILE, 'utf8')
    const keyRing = TenantKeyRing.fromText(V1_EXPORT_KEY)
    expect(verifyExport(text, 'jsonl', keyRing)).toMatchObject({ formatVersion: 1, ok: true, tenantId: 'acme', records: 17, streams: 3, problems: [] })
    const all = lines(text)
    const toolLine = all.findIndex((line) => line.includes('"type":"ToolCallExecuted"'))
    const edited = verifyExport(joinLines(all.map((line, index) => (index === toolLine ? line.replace('"hits":3', '"hits":4') : line))), 'jsonl', keyRing)
    expect(edited.firstProblem).toMatchObject({ kind: 'content_edited', stream: 'tenant_acme-task-a', revision: '3' })
    expect(verifyExport(text, 'jsonl', TenantKeyRing.fromText(`${'0'.repeat(54)}f1x7e0c0de`)).problems[0]).toMatchObject({ kind: 'manifest_altered' })
  })
})
