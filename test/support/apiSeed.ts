import type pg from 'pg'
import type { Historian } from '../../historian/historian'
import type { EventStore } from '../../historian/port'
import { defaultProjections } from '../../projections/defaultProjections'
import { ProjectionRunner } from '../../projections/runner'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'

/** The tasks `seedApiTenants` records: acme has a completed and a failed task, globex one failed task. */
export const API_SEED = {
  acme: { completed: 'task-ok', failed: 'task-bad', events: 14 },
  globex: { failed: 'task-g', events: 3 },
  /** The seeded events occur on this day (TaskEventFactory's clock); analytics windows must cover it. */
  day: '2026-01-15',
} as const

/**
 * Records two tenants' tasks through the Historian and projects them with every default projection, so the audit
 * trail, task summaries and analytics hold them. Returns the last position.
 */
export async function seedApiTenants(deps: { historian: Historian; store: EventStore; pool: pg.Pool }): Promise<bigint> {
  const ok = new TaskEventFactory('acme', API_SEED.acme.completed)
  await appendTaskEvents(deps.historian, 'acme', API_SEED.acme.completed, [
    ok.received(),
    ok.routingInvoked('research'),
    ok.planCreated(['search', 'fetch']),
    ok.toolExecuted('call-1', 'search', 'side-effect-1'),
    ok.toolFailed('call-2', 'fetch'),
    ok.synthesisFailed(true, 1),
    ok.synthesisInvoked(),
    ok.completed({ totalTokens: 1010, totalCostUsd: 0.012, toolCallsSucceeded: 1, toolCallsFailed: 1 }),
  ])
  const bad = new TaskEventFactory('acme', API_SEED.acme.failed)
  await appendTaskEvents(deps.historian, 'acme', API_SEED.acme.failed, [
    bad.received(),
    bad.routingInvoked('research'),
    bad.planCreated(['search']),
    bad.toolExecuted('call-1', 'search'),
    bad.synthesisFailed(false, 1),
    bad.failed('synthesize', 'MODEL_TIMEOUT'),
  ])
  const g = new TaskEventFactory('globex', API_SEED.globex.failed)
  await appendTaskEvents(deps.historian, 'globex', API_SEED.globex.failed, [g.received(), g.routingFailed(false, 1), g.failed('route', 'MODEL_TIMEOUT')])
  return new ProjectionRunner({ store: deps.store, pool: deps.pool, projections: defaultProjections() }).catchUp()
}
