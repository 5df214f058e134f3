import { readFileSync } from 'node:fs'
import type { NewEvent } from '../../historian/port'

/** One event of test/support/fixtures/v1-task-stream.json, as the v1 build stored it. */
export interface StoredV1Event {
  readonly revision: number
  readonly eventId: string
  readonly type: string
  readonly data: Record<string, unknown>
  readonly metadata: Record<string, unknown> & { schemaVersion: number; tenantId: string; taskId: string }
}

/** The v1 fixture: a complete task stream exactly as the v1 build stored it (never edited; it proves old events still read). */
export interface V1TaskStreamFixture {
  readonly description: string
  readonly streamName: string
  readonly events: readonly StoredV1Event[]
}

/** Loads the v1 fixture afresh (callers may not mutate a shared copy by accident). */
export function loadV1TaskStream(): V1TaskStreamFixture {
  return JSON.parse(readFileSync(new URL('./fixtures/v1-task-stream.json', import.meta.url), 'utf8')) as V1TaskStreamFixture
}

/** The fixture's events as raw port events: appending them bypasses every schema check, as rows written by v1 would. */
export function v1NewEvents(fixture: V1TaskStreamFixture, range: { from?: number; to?: number } = {}): NewEvent[] {
  return fixture.events.slice(range.from ?? 0, range.to).map(({ eventId, type, data, metadata }) => ({ eventId, type, data, metadata }))
}
