import { describe, expect, it } from 'vitest'
import { Route } from '../../activities/models/prompts'
import { routingStep } from '../../activities/modelSteps'
import {
  CURRENT_CATALOG,
  CURRENT_SCHEMA_VERSION,
  EVENT_TYPES,
  EventSchemaError,
  readEvent,
  ROUTES_OFFERED_IN_V1,
  UnknownEventTypeError,
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

/** A catalog one version ahead of this build: RoutingModelInvoked v3, whose upcaster from v2 appends an escalation route. */
function catalogWithV3(upcastV2: (data: Record<string, unknown>) => Record<string, unknown>): EventCatalogVersions {
  return {
    current: { ...CURRENT_SCHEMA_VERSION, RoutingModelInvoked: 3 },
    upcasters: { ...UPCASTERS, RoutingModelInvoked: { ...UPCASTERS.RoutingModelInvoked, 2: upcastV2 } },
  }
}

describe('RoutingModelInvoked v1 -> v2', () => {
  it('the fixture really is v1: schema version 1 and no candidateRoutes', () => {
    expect(storedRouting.metadata.schemaVersion).toBe(1)
    expect(storedRouting.data).not.toHaveProperty('candidateRoutes')
    expect(CURRENT_SCHEMA_VERSION.RoutingModelInvoked).toBe(2)
  })

  it('reads a stored v1 event as v2, with the routes every v1 routing step offered', () => {
    const event = readEvent(storedRouting)
    expect(event.type).toBe('RoutingModelInvoked')
    if (event.type !== 'RoutingModelInvoked') return
    expect(event.metadata.schemaVersion).toBe(2)
    expect(event.data.candidateRoutes).toEqual(['research', 'calculation', 'notification', 'account', 'general'])
    expect(event.data.route).toBe(storedRouting.data.route)
    // Everything else is the stored event, untouched.
    const { candidateRoutes: _added, ...rest } = event.data
    expect(rest).toEqual(storedRouting.data)
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

  it('the routing step writes v2: the routes it offered, which include the one chosen', () => {
    const data = routingStep.invokedData(routingStep.parse('{"route":"account"}'))
    expect(data).toEqual({ route: 'account', candidateRoutes: Object.values(Route) })
  })

  it('a v2 event reads as stored, without running the upcaster', () => {
    const v2 = withVersion(storedRouting, 2, { ...storedRouting.data, candidateRoutes: ['account', 'general'], route: 'general' })
    const event = readEvent(v2)
    expect(event.type === 'RoutingModelInvoked' && event.data.candidateRoutes).toEqual(['account', 'general'])
  })
})

describe('the write side stays strict (v2 only)', () => {
  const v2Data = { ...storedRouting.data, candidateRoutes: [...ROUTES_OFFERED_IN_V1] }

  it('accepts a v2 event', () => {
    expect(validateEvent(withVersion(storedRouting, 2, v2Data)).metadata.schemaVersion).toBe(2)
  })

  it('refuses v1 data (no candidateRoutes), naming the field', () => {
    expect(() => validateEvent(withVersion(storedRouting, 2))).toThrow(/RoutingModelInvoked fails its schema: data.candidateRoutes: /)
  })

  it('refuses an event tagged with an old schema version, even with v2 data', () => {
    expect(() => validateEvent(withVersion(storedRouting, 1, v2Data))).toThrow(EventSchemaError)
    expect(() => validateEvent(withVersion(storedRouting, 1, v2Data))).toThrow(/written at schema version 2, got 1/)
  })

  it('refuses a route that was not among the candidates, and repeated candidates', () => {
    expect(() => validateEvent(withVersion(storedRouting, 2, { ...v2Data, candidateRoutes: ['research'] }))).toThrow(/data.route: route must be one of candidateRoutes/)
    expect(() => validateEvent(withVersion(storedRouting, 2, { ...v2Data, candidateRoutes: ['notification', 'notification'] }))).toThrow(/candidateRoutes must be distinct/)
    expect(() => validateEvent(withVersion(storedRouting, 2, { ...v2Data, candidateRoutes: [] }))).toThrow(/candidateRoutes/)
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
    const error = catchError(() => readEvent(withVersion(storedRouting, 3)))
    expect(error).toBeInstanceOf(UnknownEventTypeError)
    expect(error).toMatchObject({ eventType: 'RoutingModelInvoked', schemaVersion: 3 })
    expect(error.message).toMatch(/RoutingModelInvoked schema version 3: this build reads RoutingModelInvoked schema versions 1 to 2/)
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

  it('raises v1 -> v2 -> v3 in order, and v2 -> v3 alone for a v2 event', () => {
    const seen: unknown[] = []
    const catalog = catalogWithV3((data) => {
      seen.push(data.candidateRoutes)
      return { ...data, candidateRoutes: [...(data.candidateRoutes as string[]), 'escalation'] }
    })
    const fromV1 = readEvent(storedRouting, catalog)
    expect(seen).toEqual([[...ROUTES_OFFERED_IN_V1]]) // the v2 upcaster saw the v1 upcaster's output
    expect(fromV1.metadata.schemaVersion).toBe(3)
    expect(fromV1.type === 'RoutingModelInvoked' && fromV1.data.candidateRoutes).toEqual([...ROUTES_OFFERED_IN_V1, 'escalation'])

    const fromV2 = readEvent(withVersion(storedRouting, 2, { ...storedRouting.data, candidateRoutes: ['notification'] }), catalog)
    expect(fromV2.type === 'RoutingModelInvoked' && fromV2.data.candidateRoutes).toEqual(['notification', 'escalation'])
  })

  it("validates an upcaster's output: a broken upcaster is an EventSchemaError naming the versions, not a bad event", () => {
    const catalog = catalogWithV3(({ route: _dropped, ...rest }) => rest)
    const error = catchError(() => readEvent(storedRouting, catalog))
    expect(error).toBeInstanceOf(EventSchemaError)
    expect(error.message).toMatch(/route: .*\(stored as v1, upcast to v3\)/)
  })

  it('an upcaster that throws, or data that is not an object, is an EventSchemaError', () => {
    const throwing = catalogWithV3(() => {
      throw new Error('no escalation route configured')
    })
    expect(() => readEvent(storedRouting, throwing)).toThrow(/upcasting v2 -> v3 failed: no escalation route configured/)
    expect(() => readEvent(withVersion(storedRouting, 1, null as never))).toThrow(/stored v1 data is not an object/)
  })

  it('a gap in the chain is UnknownEventTypeError naming the missing step', () => {
    const gap: EventCatalogVersions = { current: { ...CURRENT_SCHEMA_VERSION, RoutingModelInvoked: 3 }, upcasters: UPCASTERS }
    const error = catchError(() => readEvent(storedRouting, gap))
    expect(error).toBeInstanceOf(UnknownEventTypeError)
    expect(error.message).toMatch(/no upcaster from RoutingModelInvoked v2 to v3/)
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
