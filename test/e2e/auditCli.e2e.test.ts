import { existsSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDatabase, type Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import type { TenantAuditEntry as AuditEntry } from '../../projections/auditTimeline/query'
import type { ExportVerification } from '../../projections/export/tenantExport'
import { ProjectionRunner } from '../../projections/runner'
import type { TaskSummary, TenantSummary } from '../../projections/taskSummary/query'
import { appendAuditScenario, auditProjections } from '../support/auditFixtures'
import { freshPostgresDatabase } from '../support/databases'
import { runAnnalist, type CliRun } from '../support/runCli'
import { V1_EXPORT_FILE, V1_EXPORT_KEY } from '../support/v1Export'

/** Seeds tenants acme and globex (the same task IDs and events in both) and builds their read models. */
async function seed(database: Database, key: string): Promise<void> {
  const store = new PostgresEventStore(database)
  const historian = new Historian(store, { keyRing: TenantKeyRing.fromText(key) })
  await appendAuditScenario(historian, 'acme')
  await appendAuditScenario(historian, 'globex')
  await new ProjectionRunner({ store, pool: database.pool, projections: auditProjections() }).catchUp()
}

function expectOneLineError(run: CliRun, pattern: RegExp): void {
  expect(run.code, run.stderr).toBe(1)
  expect(run.stdout).toBe('')
  const lines = run.stderr.trim().split('\n')
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(pattern)
}

const BACKENDS = [
  {
    backend: 'pglite data directory',
    async setUp(key: string): Promise<{ env: NodeJS.ProcessEnv; tearDown(): Promise<void> }> {
      const dataDir = mkdtempSync(path.join(tmpdir(), 'annalist-audit-cli-'))
      const database = await openDatabase({ pgliteDataDir: path.join(dataDir, 'pgdata') })
      try {
        await seed(database, key)
      } finally {
        await database.close() // the CLI needs the directory to itself
      }
      return { env: { ANNALIST_DATA_DIR: dataDir }, tearDown: async () => undefined }
    },
  },
  {
    backend: 'postgres server',
    async setUp(key: string): Promise<{ env: NodeJS.ProcessEnv; tearDown(): Promise<void> }> {
      const database = await freshPostgresDatabase()
      await seed(database, key)
      return { env: { DATABASE_URL: database.url }, tearDown: () => database.close() }
    },
  },
] as const

describe.each(BACKENDS)('audit, report, export and verify-export on a $backend', ({ setUp }) => {
  const key = generateIntegrityKey()
  let env: NodeJS.ProcessEnv
  let tearDown: () => Promise<void>
  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => runAnnalist(args, { ...env, ANNALIST_INTEGRITY_KEY: key, ...extra })
  const json = async <T>(args: string[]): Promise<T> => {
    const run = await cli([...args, '--format', 'json'])
    expect(run.code, run.stderr).toBe(0)
    return JSON.parse(run.stdout) as T
  }

  beforeAll(async () => {
    ;({ env, tearDown } = await setUp(key))
  })
  afterAll(() => tearDown())

  it('audit prints CSV, applies every filter, pages, and never shows another tenant', async () => {
    const csv = await cli(['audit', 'acme', '--format', 'csv'])
    expect(csv.code, csv.stderr).toBe(0)
    const [header, ...rows] = csv.stdout.trim().split('\n')
    expect(header).toMatch(/^sequence,occurred_at,recorded_at,tenant_id,task_id,stream_revision,event_id,event_type,.*,model_version,.*,prompt_template_version,.*,idempotency_key,side_effect_id,.*,cost_usd,usage_reported,finish_reason,structured_output_path,latency_ms,summary$/)
    expect(rows).toHaveLength(17)
    expect(rows.map((row) => row.split(',')[0])).toEqual(Array.from({ length: 17 }, (_, index) => String(index + 1)))
    expect(rows.every((row) => /^\d+,[^,]+,[^,]+,acme,task-[abc],/.test(row))).toBe(true)
    expect(csv.stdout).not.toContain('globex')

    const tools = await json<AuditEntry[]>(['audit', 'acme', 'task-a', '--event-type', 'ToolCallExecuted,ToolCallFailed'])
    expect(tools.map((entry) => [entry.tenantId, entry.eventType, entry.idempotencyKey])).toEqual([
      ['acme', 'ToolCallExecuted', 'idem-task-a-call-1'],
      ['acme', 'ToolCallFailed', 'idem-task-a-call-2'],
    ])
    const ends = await json<AuditEntry[]>(['audit', 'acme', '--event-type', 'AgentTaskFailed', '--event-type', 'AgentTaskCompleted'])
    expect(ends.map((entry) => `${entry.taskId}:${entry.eventType}`)).toEqual(['task-a:AgentTaskCompleted', 'task-b:AgentTaskFailed', 'task-c:AgentTaskCompleted'])
    // A failed call's row shows what it used, and that the provider did not report it (the factory's 40-token estimate).
    const timeouts = await json<AuditEntry[]>(['audit', 'acme', 'task-b', '--event-type', 'RoutingModelFailed'])
    expect(timeouts.map((entry) => [entry.inputTokens, entry.outputTokens, entry.costUsd, entry.usageReported])).toEqual([
      [40, 0, 0, false],
      [40, 0, 0, false],
    ])
    expect(await json<AuditEntry[]>(['audit', 'acme', '--from', '2026-01-16', '--to', '2026-01-17'])).toHaveLength(4)
    const versions = await json<AuditEntry[]>(['audit', 'acme', '--model-version', '2026-03', '--prompt-version', '2'])
    expect(versions.map((entry) => [entry.taskId, entry.eventType])).toEqual([['task-c', 'SynthesisModelInvoked']])

    const first = await json<AuditEntry[]>(['audit', 'acme', '--limit', '10'])
    const rest = await json<AuditEntry[]>(['audit', 'acme', '--after', String(first[first.length - 1]!.sequence)])
    expect(first).toHaveLength(10)
    expect(rest).toHaveLength(7)
    expect(new Set([...first, ...rest].map((entry) => entry.eventId)).size).toBe(17)
    // The tenant's own numbering, never the global position.
    expect([...first, ...rest].map((entry) => entry.sequence)).toEqual(Array.from({ length: 17 }, (_, index) => String(index + 1)))
    expect(first.some((entry) => 'position' in entry)).toBe(false)
    const table = await cli(['audit', 'acme', '--limit', '2'])
    expect(table.stdout.split('\n')[1]).toMatch(/^│ seq │ occurred at \(UTC\)/)

    const globex = await json<AuditEntry[]>(['audit', 'globex', 'task-a'])
    expect(globex).toHaveLength(8)
    expect(globex.every((entry) => entry.tenantId === 'globex')).toBe(true)
    expect(globex.map((entry) => entry.sequence)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8'])
    // Valid but foreign-looking values find nothing: a tenant named like a category, a task that only globex might have.
    const lookalike = await cli(['audit', 'tenant_globex'])
    expect(lookalike.code).toBe(0)
    expect(lookalike.stdout.trim()).toBe('no audit entries for tenant tenant_globex with these filters (is the projector running?)')
    expect(await json<AuditEntry[]>(['audit', 'acme', 'globex-task-a'])).toEqual([])
  })

  it('report prints task summaries with attempts, and the tenant totals, as a table, JSON and CSV', async () => {
    const table = await cli(['report', '--tenant', 'acme'])
    expect(table.code, table.stderr).toBe(0)
    expect(table.stdout).toMatch(/task-a .*completed/)
    expect(table.stdout).toMatch(/task-b .*failed .*route .*MODEL_TIMEOUT/)
    expect(table.stdout.trim().split('\n').at(-1)).toBe(
      'tenant acme: 3 tasks (received 0, running 0, completed 2, failed 1, cancelled 0), 19 attempts, 1 tool calls ok, 1 failed, 3 failed model attempts, ' +
        '2020 tokens, $0.024000 reported (failed calls $0.000000); 3 calls without reported usage, estimated 120 tokens, $0.000000 (not in the totals)',
    )
    expect(table.stdout).not.toContain('globex')

    const report = await json<{ totals: TenantSummary; tasks: TaskSummary[] }>(['report', '--tenant', 'acme'])
    expect(report.totals).toMatchObject({
      tenantId: 'acme',
      tasks: 3,
      attempts: 19,
      totalTokens: 2020,
      totalCostUsd: 0.024,
      failedCallCostUsd: 0,
      callsWithoutReportedUsage: 3,
      estimatedUnreportedTokens: 120,
      estimatedUnreportedCostUsd: 0,
    })
    expect(report.tasks.map((task) => [task.taskId, task.status, task.attempts, task.failedStep])).toEqual([
      ['task-a', 'completed', 8, null],
      ['task-b', 'failed', 4, 'route'],
      ['task-c', 'completed', 7, null],
    ])
    const failed = await json<{ totals: TenantSummary; tasks: TaskSummary[] }>(['report', '--tenant', 'acme', '--status', 'failed'])
    expect(failed.tasks.map((task) => task.taskId)).toEqual(['task-b'])
    expect(failed.totals).toMatchObject({ tasks: 1, attempts: 4 })

    const csv = await cli(['report', '--tenant', 'acme', '--task', 'task-c', '--format', 'csv'])
    expect(csv.code, csv.stderr).toBe(0)
    const [header, task, total] = csv.stdout.trim().split('\n')
    expect(header).toBe(
      'task_id,status,current_step,failed_step,error_code,attempts,tool_calls_succeeded,tool_calls_failed,model_attempts_failed,total_tokens,total_cost_usd,' +
        'failed_call_cost_usd,calls_without_reported_usage,estimated_unreported_tokens,estimated_unreported_cost_usd,models_used,started_at,finished_at',
    )
    expect(task).toMatch(/^task-c,completed,complete,,,7,0,0,0,1010,0\.012,0,0,0,0,/)
    expect(total).toBe('(total),"received 0, running 0, completed 1, failed 0, cancelled 0",,,,7,0,0,0,1010,0.012,0,0,0,0,,,')
  })

  it('export writes a verifiable file; verify-export exits 0, 2 when a byte changes or under another key, 1 on errors', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'annalist-export-'))
    const file = path.join(dir, 'acme.jsonl')
    const exported = await cli(['export', '--tenant', 'acme', '--out', file])
    expect(exported.code, exported.stderr).toBe(0)
    expect(exported.stdout).toBe('')
    expect(exported.stderr.trim().split('\n').at(-1)).toBe(`exported 17 events of 3 streams of tenant acme to ${file}; hash chains intact`)
    const text = readFileSync(file, 'utf8')
    // A header line, 17 records, a manifest line, and the final newline.
    expect(text.split('\n')).toHaveLength(20)
    expect(text).not.toContain('tenant_globex')

    const ok = await cli(['verify-export', file])
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.stdout).toMatch(/^export of tenant acme \(17 records, 3 streams, whole log, exported [^)]+\): verified, unaltered\nhash chains when exported: intact\n$/)

    const tampered = path.join(dir, 'tampered.jsonl')
    writeFileSync(tampered, text.replace('"hits":3', '"hits":4'))
    const altered = await cli(['verify-export', tampered])
    expect(altered.code).toBe(2)
    expect(altered.stdout).toMatch(/: ALTERED, 2 problem\(s\)\nfirst problem: stream tenant_acme-task-a revision 3 \(line \d+\): content_edited: /)
    const alteredJson = await cli(['verify-export', tampered, '--format', 'json'])
    expect(alteredJson.code).toBe(2)
    expect((JSON.parse(alteredJson.stdout) as ExportVerification).firstProblem).toMatchObject({ kind: 'content_edited', stream: 'tenant_acme-task-a', revision: '3' })

    // Cut short before its manifest line (an export that failed part way): refused in one line, exit 1.
    const cutShort = path.join(dir, 'cut-short.jsonl')
    writeFileSync(cutShort, `${text.trimEnd().split('\n').slice(0, -1).join('\n')}\n`)
    expectOneLineError(await cli(['verify-export', cutShort]), /^annalist: not a readable Annalist export \(line 18\): truncated export: no manifest line/)
    // A format version 1 export made before version 2 still verifies, under the key it was made with.
    const v1 = await cli(['verify-export', fileURLToPath(V1_EXPORT_FILE)], { ANNALIST_INTEGRITY_KEY: V1_EXPORT_KEY })
    expect(v1.code, v1.stdout).toBe(0)
    expect(v1.stdout).toMatch(/^export of tenant acme \(17 records, 3 streams, whole log, exported [^)]+\): verified, unaltered\n/)

    const otherKey = await cli(['verify-export', file], { ANNALIST_INTEGRITY_KEY: generateIntegrityKey() })
    expect(otherKey.code).toBe(2)
    expect(otherKey.stdout).toMatch(/manifest_altered/)

    const csv = await cli(['export', '--tenant', 'acme', '--format', 'csv'])
    expect(csv.code, csv.stderr).toBe(0)
    const csvLines = csv.stdout.trimEnd().split('\n')
    const [headerLine, columns] = csvLines
    expect(JSON.parse(headerLine!.slice(1))).toMatchObject({ format: 'annalist-export', formatVersion: 2, part: 'header', tenantId: 'acme' })
    expect(columns).toBe('sequence,stream,revision,event_id,type,schema_version,recorded_at,data,metadata')
    expect(JSON.parse(csvLines.at(-1)!.slice(1))).toMatchObject({ part: 'manifest', counts: { records: 17 } })
    const csvFile = path.join(dir, 'acme.csv')
    writeFileSync(csvFile, csv.stdout)
    expectOneLineError(await cli(['verify-export', csvFile]), /^annalist: not a readable Annalist export \(line 1\): this is a CSV export; verify-export checks JSONL exports/)
    expectOneLineError(await cli(['verify-export', path.join(dir, 'missing.jsonl')]), /^annalist: cannot read .*missing\.jsonl: ENOENT/)
    expectOneLineError(await cli(['export', '--tenant', 'acme'], { ANNALIST_INTEGRITY_KEY: '' }), /^annalist: ANNALIST_INTEGRITY_KEY: not set/)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    const existing = path.join(dir, 'existing.jsonl')
    writeFileSync(existing, 'keep me')
    expectOneLineError(await cli(['export', '--tenant', 'acme', '--out', existing]), /^annalist: refusing to write the export to .*existing\.jsonl: it already exists/)
    expect(readFileSync(existing, 'utf8')).toBe('keep me')
    const target = path.join(dir, 'target.jsonl')
    const link = path.join(dir, 'link.jsonl')
    symlinkSync(target, link)
    expectOneLineError(await cli(['export', '--tenant', 'acme', '--out', link]), /^annalist: refusing to write the export to .*link\.jsonl: it already exists/)
    expect(existsSync(target)).toBe(false)
    const nobody = await cli(['export', '--tenant', 'nobody'])
    expect(nobody.code).toBe(1)
    expect(nobody.stdout).toBe('')
    // stderr may hold progress lines first (not a terminal: cli-progress prints plain lines); the error is the last line.
    expect(nobody.stderr.trim().split('\n').at(-1)).toMatch(/^annalist: nothing to export: tenant nobody has no events/)
  })
})

describe('audit, report and export reject bad input before reading anything', () => {
  // Nothing listens here: a run that got as far as the database would fail with a connection error instead.
  const unreachable = { DATABASE_URL: 'postgres://nobody:nothing@127.0.0.1:9/none', ANNALIST_INTEGRITY_KEY: generateIntegrityKey() }

  it('names the bad option in one line and exits 1', async () => {
    const cases: [string[], RegExp][] = [
      [['audit', 'ACME'], /^annalist: invalid tenant ID "ACME"/],
      [['audit', 'acmé'], /^annalist: invalid tenant ID "acmé"/],
      [['audit', "acme' or '1'='1"], /^annalist: invalid tenant ID/],
      [['audit', 'acme', "task-a' OR tenant_id = 'globex"], /^annalist: invalid task ID/],
      [['audit', 'acme', '--event-type', "ToolCallExecuted' OR tenant_id='globex"], /^annalist: invalid --event-type: .* is not a known event type; known: AgentTaskReceived, /],
      [['audit', 'acme', '--event-type', 'ToolCallExecuted,'], /^annalist: invalid --event-type: "" is not a known event type/],
      [['audit', 'acme', '--model-version', "2026-01' OR '1'='1"], /^annalist: invalid --model-version: /],
      [['audit', 'acme', '--prompt-version', '1;drop table events'], /^annalist: invalid --prompt-version: /],
      [['audit', 'acme', '--limit', '0'], /^annalist: invalid --limit: must be a whole number from 1 to 10000, got "0"/],
      [['audit', 'acme', '--limit', '10001'], /^annalist: invalid --limit: /],
      [['audit', 'acme', '--after', '-1'], /^annalist: invalid --after: must be a tenant sequence/],
      [['audit', 'acme', '--from', 'yesterday'], /^annalist: invalid --from: "yesterday" is not an ISO 8601/],
      [['audit', 'acme', '--from', '2026-02-31'], /^annalist: invalid --from: "2026-02-31" is not a valid date or time/],
      [['audit', 'acme', '--from', '2026-02-01', '--to', '2026-01-01'], /^annalist: invalid --from\/--to: from 2026-02-01T00:00:00.000Z is not before/],
      [['audit', 'acme', '--from', '2001-01-01', '--to', '2099-01-01'], /^annalist: invalid --from\/--to: .* wider than/],
      [['report', '--tenant', 'Acme'], /^annalist: invalid tenant ID "Acme"/],
      [['report', '--tenant', 'acme', '--status', 'done'], /^annalist: invalid --status: "done" is not a task status; use one of received, running, completed, failed/],
      [['report', '--tenant', 'acme', '--task', '../globex'], /^annalist: invalid task ID/],
      [['report', '--tenant', 'acme', '--limit', 'all'], /^annalist: invalid --limit: /],
      [['export', '--tenant', 'globex-x'], /^annalist: invalid tenant ID "globex-x"/],
      [['export', '--tenant', 'acme', '--to', 'now'], /^annalist: invalid --to: /],
    ]
    const runs = await Promise.all(cases.map(([args]) => runAnnalist(args, unreachable)))
    runs.forEach((run, index) => expectOneLineError(run, cases[index]![1]))
    // The same runner does reach the database for valid input: the checks above stopped first.
    expectOneLineError(await runAnnalist(['audit', 'acme'], unreachable), /^annalist: cannot connect to PostgreSQL/)
  })
})
