import { describe, expect, it } from 'vitest'
import { Route } from '../../activities/models/prompts'
import { routingStep } from '../../activities/pipelineModelSteps'
import {
  CURRENT_CATALOG,
  CURRENT_SCHEMA_VERSION,
  EVENT_TYPES,
  EventSchemaError,
  readEvent,
  ROUTES_OFFERED_IN_V1,
  UnknownEventTypeError,
  upcastModelFailureToReplyFacts,
  UPCASTERS,
  validateEvent,
  type EventCatalogVersions,
} from '../../historian/events'
import { loadV1TaskStream, type StoredV1Event } from '../support/v1Fixture'

const fixture = loadV1TaskStream()
const storedRouting = fixture.events.find((event) => event.type === 'RoutingModelInvoked')!

function withVersion(stored: StoredV1Event, schemaVersion: number | undefined, data: Record<string, unknown> = stored.data) {
  return { type: stored.type, data, metadata: { ...stored.metadata, schemaVersion } }
}

/** What schema v3 of RoutingModelInvoked (and v2 of the other model events) adds to what a call recorded. */
const V3_REPLY_FACTS = { finishReason: 'stop', systemFingerprint: null, callIndex: 0, structuredOutput: { dialect: 'json_schema', path: 'constrained' } }

/** A catalog one version ahead of this build: RoutingModelInvoked v4, whose upcaster from v3 appends an escalation route. */
function catalogWithV4(upcastV3: (data: Record<string, unknown>) => Record<string, unknown>): EventCatalogVersions {
  return {
    current: { ...CURRENT_SCHEMA_VERSION, RoutingModelInvoked: 4 },
    upcasters: { ...UPCASTERS, RoutingModelInvoked: { ...UPCASTERS.RoutingModelInvoked, 3: upcastV3 } },
  }
}

describe('RoutingModelInvoked v1 -> v2 -> v3', () => {
  it('the fixture really is v1: schema version 1 and no candidateRoutes', () => {
    expect(storedRouting.metadata.schemaVersion).toBe(1)
    expect(storedRouting.data).not.toHaveProperty('candidateRoutes')
    expect(CURRENT_SCHEMA_VERSION.RoutingModelInvoked).toBe(3)
  })

  it('reads a stored v1 event as v3: the routes every v1 routing step offered, then the reply facts it never recorded as unknown', () => {
    const event = readEvent(storedRouting)
    expect(event.type).toBe('RoutingModelInvoked')
    if (event.type !== 'RoutingModelInvoked') return
    expect(event.metadata.schemaVersion).toBe(3)
    expect(event.data.candidateRoutes).toEqual(['research', 'calculation', 'notification', 'account', 'general'])
    expect(event.data.route).toBe(storedRouting.data.route)
    expect(event.data).toMatchObject({ finishReason: null, systemFingerprint: null, callIndex: 0, structuredOutput: null, usage: { reported: true } })
    // Everything else is the stored event, untouched.
    const { candidateRoutes: _added, finishReason: _f, systemFingerprint: _s, callIndex: _c, structuredOutput: _o, usage: { reported: _r, ...usage }, ...rest } = event.data
    expect({ ...rest, usage }).toEqual(storedRouting.data)
  })

  it('never edits what was stored: reading leaves the stored object as it was', () => {
    const stored = structuredClone(storedRouting)
    readEvent(stored)
    expect(stored).toEqual(storedRouting)
  })

  it('adds the chosen route when a v1 writer recorded one outside the five (the chosen route was necessarily offered)', () => {
    const event = readEvent(withVersion(storedRouting, 1, { ...storedRouting.data, route: 'escalation' }))
    expect(event.type === 'RoutingModelInvoked' && event.data.candidateRoutes).toEqual([...ROUTES_OFFERED_IN_V1, 'escalation'])
  })

  it('the frozen v1 route list is what the routing prompt offered when v1 was written', () => {
    // If today's routes change, ROUTES_OFFERED_IN_V1 must not: it describes the past. Today they still agree.
    expect([...ROUTES_OFFERED_IN_V1]).toEqual(Object.values(Route))
    expect(Object.isFrozen(ROUTES_OFFERED_IN_V1)).toBe(true)
  })

  it('the routing step writes the routes it offered, which include the one chosen', () => {
    const recorded = readEvent(storedRouting)
    if (recorded.type !== 'RoutingModelInvoked') throw new Error('the fixture has no routing outcome')
    const { route: _route, candidateRoutes: _offered, ...invocation } = recorded.data
    const data = routingStep.invokedData({ route: 'account' }, invocation)
    expect(data).toEqual({ ...invocation, route: 'account', candidateRoutes: Object.values(Route) })
  })

  it('a v2 event keeps its candidate routes and only gains the v3 reply facts', () => {
    const v2 = withVersion(storedRouting, 2, { ...storedRouting.data, candidateRoutes: ['account', 'general'], route: 'general' })
    const event = readEvent(v2)
    expect(event.type === 'RoutingModelInvoked' && event.data.candidateRoutes).toEqual(['account', 'general'])
    expect(event.metadata.schemaVersion).toBe(3)
  })
})

describe('the write side stays strict (current versions only)', () => {
  const v3Data = { ...storedRouting.data, usage: { ...(storedRouting.data.usage as object), reported: true }, candidateRoutes: [...ROUTES_OFFERED_IN_V1], ...V3_REPLY_FACTS }

  it('accepts a v3 event', () => {
    expect(validateEvent(withVersion(storedRouting, 3, v3Data)).metadata.schemaVersion).toBe(3)
  })

  it('refuses v1 data (no candidateRoutes, no reply facts), naming the fields', () => {
    expect(() => validateEvent(withVersion(storedRouting, 3))).toThrow(/RoutingModelInvoked fails its schema: .*data.callIndex: .*data.candidateRoutes: /)
  })

  it('refuses an event tagged with an old schema version, even with current data', () => {
    expect(() => validateEvent(withVersion(storedRouting, 2, v3Data))).toThrow(EventSchemaError)
    expect(() => validateEvent(withVersion(storedRouting, 2, v3Data))).toThrow(/written at schema version 3, got 2/)
  })

  it('refuses a route that was not among the candidates, and repeated candidates', () => {
    expect(() => validateEvent(withVersion(storedRouting, 3, { ...v3Data, candidateRoutes: ['research'] }))).toThrow(/data.route: route must be one of candidateRoutes/)
    expect(() => validateEvent(withVersion(storedRouting, 3, { ...v3Data, candidateRoutes: ['notification', 'notification'] }))).toThrow(/candidateRoutes must be distinct/)
    expect(() => validateEvent(withVersion(storedRouting, 3, { ...v3Data, candidateRoutes: [] }))).toThrow(/candidateRoutes/)
  })
})

describe('the model events\' one step to reply facts (usage of failed calls, finish reason, structured output)', () => {
  const failure = { model: { provider: 'p', modelId: 'm', modelVersion: 'm' }, prompt: storedRouting.data.prompt, errorCode: 'MODEL_TIMEOUT', message: 'timed out', willRetry: true, latencyMs: 30_000 }

  it('reads every v1 model failure with its usage not reported, as the step\'s first call, with no reply and no repair', () => {
    for (const type of ['RoutingModelFailed', 'PlanningModelFailed', 'SynthesisModelFailed'] as const) {
      const event = readEvent({ type, data: failure, metadata: { ...storedRouting.metadata, schemaVersion: 1 } })
      expect(event.metadata.schemaVersion).toBe(2)
      expect(event.data).toEqual(upcastModelFailureToReplyFacts(failure))
      expect(event.data).toMatchObject({ ...failure, usage: { costUsd: 0, reported: false }, callIndex: 0, responseText: null, willRepair: false, isRepair: false })
    }
  })

  it('reads every v1 successful model event with its usage as reported and no structured-output record', () => {
    const invocation = { ...storedRouting.data }
    delete (invocation as Record<string, unknown>).route
    const cases = [
      ['PlanCreated', { ...invocation, toolCalls: [] }],
      ['PlanIterationCreated', { ...invocation, iteration: 1, toolCalls: [], done: true }],
      ['SynthesisModelInvoked', { ...invocation, answer: 'done' }],
    ] as const
    for (const [type, data] of cases) {
      const event = readEvent({ type, data, metadata: { ...storedRouting.metadata, schemaVersion: 1 } })
      expect(event.metadata.schemaVersion).toBe(2)
      expect(event.data).toMatchObject({ usage: { reported: true }, finishReason: null, systemFingerprint: null, callIndex: 0, structuredOutput: null })
    }
  })

  it('refuses to write a model failure without its usage', () => {
    expect(() => validateEvent({ type: 'RoutingModelFailed', data: failure, metadata: { ...storedRouting.metadata, schemaVersion: 2 } })).toThrow(/data.usage: /)
  })
})

describe('events this build cannot read get UnknownEventTypeError naming type and version', () => {
  it('an unknown type, with the version it was stored at', () => {
    const error = catchError(() => readEvent({ type: 'RefundIssued', data: {}, metadata: { ...storedRouting.metadata, schemaVersion: 4 } }))
    expect(error).toBeInstanceOf(UnknownEventTypeError)
    expect(error).toMatchObject({ eventType: 'RefundIssued', schemaVersion: 4 })
    expect(error.message).toBe('unknown event type RefundIssued (schema version 4): this build cannot read it')
  })

  it('a known type at a future version', () => {
    const error = catchError(() => readEvent(withVersion(storedRouting, 4)))
    expect(error).toBeInstanceOf(UnknownEventTypeError)
    expect(error).toMatchObject({ eventType: 'RoutingModelInvoked', schemaVersion: 4 })
    expect(error.message).toMatch(/RoutingModelInvoked schema version 4: this build reads RoutingModelInvoked schema versions 1 to 3/)
  })

  it('a known type with a missing, zero or non-integer version', () => {
    for (const version of [undefined, 0, 1.5]) {
      const error = catchError(() => readEvent(withVersion(storedRouting, version)))
      expect(error).toBeInstanceOf(UnknownEventTypeError)
      expect(error.message).toMatch(/RoutingModelInvoked schema version (missing|0)/)
    }
  })

  it('an unknown type is refused on the write side too', () => {
    expect(() => validateEvent({ type: 'RefundIssued', data: {}, metadata: {} })).toThrow(UnknownEventTypeError)
  })
})

describe('readEvent upcasts along chains of versions and validates what upcasters produce', () => {
  it('every type at version N has an upcaster for each of 1 .. N-1', () => {
    for (const type of EVENT_TYPES) {
      for (let version = 1; version < CURRENT_SCHEMA_VERSION[type]; version++) expect(UPCASTERS[type]?.[version], `${type} v${version}`).toBeTypeOf('function')
    }
    expect(CURRENT_CATALOG).toEqual({ current: CURRENT_SCHEMA_VERSION, upcasters: UPCASTERS })
  })

  it('raises v1 -> v2 -> v3 -> v4 in order, and v3 -> v4 alone for a v3 event', () => {
    const seen: unknown[] = []
    const catalog = catalogWithV4((data) => {
      seen.push([data.candidateRoutes, data.callIndex])
      return { ...data, candidateRoutes: [...(data.candidateRoutes as string[]), 'escalation'] }
    })
    const fromV1 = readEvent(storedRouting, catalog)
    expect(seen).toEqual([[[...ROUTES_OFFERED_IN_V1], 0]]) // the v3 upcaster saw the v1 and v2 upcasters' output
    expect(fromV1.metadata.schemaVersion).toBe(4)
    expect(fromV1.type === 'RoutingModelInvoked' && fromV1.data.candidateRoutes).toEqual([...ROUTES_OFFERED_IN_V1, 'escalation'])

    const v3 = { ...storedRouting.data, usage: { ...(storedRouting.data.usage as object), reported: true }, candidateRoutes: ['notification'], route: 'notification', ...V3_REPLY_FACTS }
    const fromV3 = readEvent(withVersion(storedRouting, 3, v3), catalog)
    expect(fromV3.type === 'RoutingModelInvoked' && fromV3.data.candidateRoutes).toEqual(['notification', 'escalation'])
  })

  it("validates an upcaster's output: a broken upcaster is an EventSchemaError naming the versions, not a bad event", () => {
    const catalog = catalogWithV4(({ route: _dropped, ...rest }) => rest)
    const error = catchError(() => readEvent(storedRouting, catalog))
    expect(error).toBeInstanceOf(EventSchemaError)
    expect(error.message).toMatch(/route: .*\(stored as v1, upcast to v4\)/)
  })

  it('an upcaster that throws, or data that is not an object, is an EventSchemaError', () => {
    const throwing = catalogWithV4(() => {
      throw new Error('no escalation route configured')
    })
    expect(() => readEvent(storedRouting, throwing)).toThrow(/upcasting v3 -> v4 failed: no escalation route configured/)
    expect(() => readEvent(withVersion(storedRouting, 1, null as never))).toThrow(/stored v1 data is not an object/)
  })

  it('a gap in the chain is UnknownEventTypeError naming the missing step', () => {
    const gap: EventCatalogVersions = { current: { ...CURRENT_SCHEMA_VERSION, RoutingModelInvoked: 4 }, upcasters: UPCASTERS }
    const error = catchError(() => readEvent(storedRouting, gap))
    expect(error).toBeInstanceOf(UnknownEventTypeError)
    expect(error.message).toMatch(/no upcaster from RoutingModelInvoked v3 to v4/)
  })
})

function catchError(run: () => unknown): Error {
  try {
    run()
  } catch (error) {
    return error as Error
  }
  throw new Error('expected an error')
}
