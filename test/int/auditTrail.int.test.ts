import { beforeEach, describe, expect, it } from 'vitest'
import { InvalidIdentifierError } from '../../historian/streams'
import { auditTrail, type AuditEntry, type AuditTrailQuery } from '../../projections/auditTimeline/query'
import { InvalidQueryError } from '../../projections/queryFilters'
import { ProjectionRunner } from '../../projections/runner'
import { appendAuditScenario, auditProjections } from '../support/auditFixtures'
import { DATABASE_BACKENDS, historianPerTest } from '../support/databases'

const types = (entries: readonly AuditEntry[]) => entries.map((entry) => `${entry.taskId}:${entry.eventType}`)

describe.each(DATABASE_BACKENDS)('audit trail filters on $backend', ({ open }) => {
  const fixture = historianPerTest(open)
  const trail = (query: Omit<AuditTrailQuery, 'tenantId'> & { tenantId?: string }) => auditTrail(fixture.database.pool, { tenantId: 'acme', ...query })

  beforeEach(async () => {
    // Two tenants with the same task IDs and the same events: any leak across tenants shows up as extra rows.
    await appendAuditScenario(fixture.historian, 'acme')
    await appendAuditScenario(fixture.historian, 'globex')
    await new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: auditProjections() }).catchUp()
  })

  it('carries model and prompt versions, tool side effects with idempotency keys, and costs', async () => {
    const all = await trail({})
    expect(all).toHaveLength(17)
    expect(all.every((entry) => entry.tenantId === 'acme')).toBe(true)
    const [synthesis] = await trail({ taskId: 'task-c', eventTypes: ['SynthesisModelInvoked'] })
    expect(synthesis).toMatchObject({ modelId: 'scripted-writer', modelVersion: '2026-03', promptTemplateId: 'synthesize', promptTemplateVersion: '2', attempt: 1 })
    expect(synthesis!.costUsd).toBe(0.0075)
    expect(synthesis!.inputTokens! + synthesis!.outputTokens!).toBe(560)
    const [tool] = await trail({ eventTypes: ['ToolCallExecuted'] })
    expect(tool).toMatchObject({ toolName: 'search', toolCallId: 'call-1', idempotencyKey: 'idem-task-a-call-1', sideEffectId: 'side-effect-1' })
    const [completed] = await trail({ taskId: 'task-a', eventTypes: ['AgentTaskCompleted'] })
    expect(completed!.costUsd).toBe(0.012)
  })

  it('filters by task, by a closed-open time range, by event types, by model version and by prompt version', async () => {
    expect(types(await trail({ taskId: 'task-b' }))).toEqual(['task-b:AgentTaskReceived', 'task-b:RoutingModelFailed', 'task-b:RoutingModelFailed', 'task-b:AgentTaskFailed'])

    // task-a's events occurred at 09:00:00, :01, ... :07: `from` is inclusive, `to` exclusive.
    const window = await trail({ from: '2026-01-15T09:00:03Z', to: '2026-01-15T09:00:05Z' })
    expect(window.map((entry) => entry.streamRevision)).toEqual([3n, 4n])
    expect(window.map((entry) => entry.occurredAt.toISOString())).toEqual(['2026-01-15T09:00:03.000Z', '2026-01-15T09:00:04.000Z'])
    expect(types(await trail({ to: '2026-01-16' })).every((type) => type.startsWith('task-a:'))).toBe(true)
    expect(await trail({ to: '2026-01-16' })).toHaveLength(8)
    expect(await trail({ from: new Date('2026-01-16T00:00:00Z') })).toHaveLength(9)

    expect(types(await trail({ eventTypes: ['ToolCallExecuted', 'ToolCallFailed'] }))).toEqual(['task-a:ToolCallExecuted', 'task-a:ToolCallFailed'])
    expect(types(await trail({ eventTypes: ['AgentTaskFailed', 'AgentTaskFailed'] }))).toEqual(['task-b:AgentTaskFailed'])
    expect(types(await trail({ modelVersion: '2026-02' }))).toEqual(['task-a:SynthesisModelFailed', 'task-a:SynthesisModelInvoked'])
    expect(types(await trail({ modelVersion: '2026-03' }))).toEqual(['task-c:SynthesisModelInvoked'])
    expect(types(await trail({ promptTemplateVersion: '2' }))).toEqual(['task-c:SynthesisModelInvoked'])
    expect(await trail({ promptTemplateVersion: '1' })).toHaveLength(8)
    expect(await trail({ modelVersion: '1999-01' })).toEqual([])
  })

  it('combines filters with AND', async () => {
    expect(types(await trail({ taskId: 'task-a', modelVersion: '2026-01', eventTypes: ['PlanCreated', 'RoutingModelInvoked'] }))).toEqual([
      'task-a:RoutingModelInvoked',
      'task-a:PlanCreated',
    ])
    expect(types(await trail({ modelVersion: '2026-01', promptTemplateVersion: '1', from: '2026-01-16', to: '2026-01-18' }))).toEqual([
      'task-b:RoutingModelFailed',
      'task-b:RoutingModelFailed',
      'task-c:RoutingModelInvoked',
      'task-c:PlanCreated',
    ])
    expect(await trail({ taskId: 'task-b', eventTypes: ['ToolCallExecuted'] })).toEqual([])
    expect(await trail({ taskId: 'task-a', from: '2026-01-16' })).toEqual([])
  })

  it('pages through the filtered trail with afterPosition and limit, without gap or repeat', async () => {
    const whole = await trail({ from: '2026-01-15T09:00:02Z' })
    expect(whole).toHaveLength(15)
    const pages: AuditEntry[][] = []
    let after: bigint | undefined
    for (;;) {
      const page = await trail({ from: '2026-01-15T09:00:02Z', afterPosition: after, limit: 4 })
      if (page.length === 0) break
      pages.push(page)
      after = page[page.length - 1]!.position
    }
    expect(pages.map((page) => page.length)).toEqual([4, 4, 4, 3])
    expect(pages.flat()).toEqual(whole)
    expect(await trail({ limit: 10_000 })).toHaveLength(17)
    expect(await trail({ limit: 1 })).toEqual((await trail({})).slice(0, 1))
  })

  it('numbers each tenant 1..17 and pages by tenant sequence exactly as by position', async () => {
    const globex = await trail({ tenantId: 'globex' })
    expect(globex.map((entry) => entry.sequence)).toEqual(Array.from({ length: 17 }, (_, index) => BigInt(index + 1)))
    expect((await trail({})).map((entry) => entry.sequence)).toEqual(globex.map((entry) => entry.sequence))
    const whole = await trail({ from: '2026-01-15T09:00:02Z' })
    const pages: AuditEntry[][] = []
    for (let after = 0n; ; ) {
      const page = await trail({ from: '2026-01-15T09:00:02Z', afterSequence: after, limit: 4 })
      if (page.length === 0) break
      pages.push(page)
      after = page[page.length - 1]!.sequence
    }
    expect(pages.map((page) => page.length)).toEqual([4, 4, 4, 3])
    expect(pages.flat()).toEqual(whole)
    expect(await trail({ tenantId: 'globex', afterSequence: 17n })).toEqual([])
  })

  it('never returns another tenant’s rows, whatever the filters say', async () => {
    const globex = await trail({ tenantId: 'globex' })
    expect(globex).toHaveLength(17)
    expect(globex.every((entry) => entry.tenantId === 'globex')).toBe(true)
    const acmePositions = new Set((await trail({})).map((entry) => entry.position))
    expect(globex.some((entry) => acmePositions.has(entry.position))).toBe(false)
    // The same task ID exists in both tenants: asking acme for it gives acme's rows only.
    expect((await trail({ taskId: 'task-a' })).every((entry) => entry.tenantId === 'acme')).toBe(true)
    // Paging past acme's last position does not fall through into globex's later rows.
    const last = [...acmePositions].reduce((a, b) => (a > b ? a : b))
    expect(await trail({ afterPosition: last })).toEqual([])

    const crafted: [Partial<AuditTrailQuery>, new (...args: never[]) => Error][] = [
      [{ tenantId: 'ACME' }, InvalidIdentifierError],
      [{ tenantId: 'acme ' }, InvalidIdentifierError],
      [{ tenantId: 'acmé' }, InvalidIdentifierError],
      [{ tenantId: "acme' or '1'='1" }, InvalidIdentifierError],
      [{ taskId: "task-a' or tenant_id = 'globex" }, InvalidIdentifierError],
      [{ taskId: 'task-a;--' }, InvalidIdentifierError],
      [{ eventTypes: ["ToolCallExecuted' or tenant_id = 'globex"] }, InvalidQueryError],
      [{ eventTypes: ['toolcallexecuted'] }, InvalidQueryError],
      [{ modelVersion: "2026-01' or '1'='1" }, InvalidQueryError],
      [{ promptTemplateVersion: '1 union select * from events' }, InvalidQueryError],
    ]
    for (const [query, error] of crafted) await expect(trail(query), JSON.stringify(query)).rejects.toBeInstanceOf(error)
    // A valid tenant ID that merely looks like a stream category is a tenant of its own, with no rows.
    expect(await trail({ tenantId: 'tenant_globex' })).toEqual([])
  })
})
