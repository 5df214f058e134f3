import { z } from 'zod'
import type { ModelEventType, ToolCallEventType } from './catalogue'
import { EventSchemaError, UnknownEventTypeError } from './errors'
import { upcastModelFailureToReplyFacts, upcastModelInvocationToReplyFacts } from './common'
import { ComplianceEvent } from './lifecycle'
import type { EventMetadata } from './metadata'
import { ModelEvent, upcastRoutingModelInvokedV1 } from './model'
import { RunEvent } from './run'
import { TaskEvent } from './task'
import { ToolEvent } from './tool'

export * from './catalogue'
export * from './common'
export * from './errors'
export * from './ids'
export * from './lifecycle'
export * from './metadata'
export * from './model'
export * from './run'
export * from './task'
export * from './tool'

/** Every Annalist domain event, current version. */
export const AnnalistEvent = z.discriminatedUnion('type', [...TaskEvent.options, ...RunEvent.options, ...ModelEvent.options, ...ToolEvent.options, ...ComplianceEvent.options])
export type AnnalistEvent = z.infer<typeof AnnalistEvent>
export type AnnalistEventType = AnnalistEvent['type']
export type EventOfType<T extends AnnalistEventType> = Extract<AnnalistEvent, { type: T }>

/** Fails to compile when the catalogue (catalogue.ts) names an event type that does not exist. */
type OnlyEventTypes<T extends AnnalistEventType> = T
export type CatalogueEventType = OnlyEventTypes<ModelEventType | ToolCallEventType>

/** Current schema version of each event type. Bump it and add an upcaster when a schema changes. */
export const CURRENT_SCHEMA_VERSION = {
  AgentTaskReceived: 1,
  AgentTaskCompleted: 1,
  AgentTaskFailed: 1,
  AgentTaskCancelled: 1,
  RoutingModelInvoked: 3,
  RoutingModelFailed: 2,
  PlanCreated: 2,
  PlanIterationCreated: 2,
  PlanningModelFailed: 2,
  SynthesisModelInvoked: 2,
  SynthesisModelFailed: 2,
  ToolCallExecuted: 1,
  ToolCallFailed: 1,
  ToolCallCompensated: 1,
  ToolCompensationFailed: 1,
  TaskRunStarted: 1,
  TaskRunContinued: 1,
  TaskDeadLettered: 1,
  RedriveRequested: 1,
  StreamLifecycleDecided: 1,
} as const satisfies Record<AnnalistEventType, number>

/**
 * Builds an event of one type: its data is checked against that type's at compile time, and it is stamped with the
 * type's current schema version. The one place an event object is assembled; the Historian validates it on append.
 */
export function buildEvent<T extends AnnalistEventType>(type: T, data: EventOfType<T>['data'], metadata: Omit<EventMetadata, 'schemaVersion'>): EventOfType<T> {
  const stamped: EventMetadata = { schemaVersion: CURRENT_SCHEMA_VERSION[type], ...metadata }
  // TypeScript cannot narrow a union member from a generic `type`; the parameters above pin `data` to it.
  return { type, data, metadata: stamped } as EventOfType<T>
}

export const EVENT_TYPES = Object.keys(CURRENT_SCHEMA_VERSION) as AnnalistEventType[]

export function isAnnalistEventType(type: string): type is AnnalistEventType {
  return Object.hasOwn(CURRENT_SCHEMA_VERSION, type)
}

/** Raises a stored event's data from version `from` to `from + 1`. Pure: it sees only the stored data. */
export type Upcaster = (data: Record<string, unknown>) => Record<string, unknown>

/** Upcasters by event type, keyed by the version each one reads (it returns version + 1). */
export type Upcasters = Readonly<Partial<Record<AnnalistEventType, Readonly<Record<number, Upcaster>>>>>

/**
 * Every upcaster of this build. A type at version N needs one entry for each of 1 .. N-1, so that any stored version
 * reads as the current one (docs/schema-evolution.md).
 */
export const UPCASTERS: Upcasters = {
  RoutingModelInvoked: { 1: upcastRoutingModelInvokedV1, 2: upcastModelInvocationToReplyFacts },
  RoutingModelFailed: { 1: upcastModelFailureToReplyFacts },
  PlanCreated: { 1: upcastModelInvocationToReplyFacts },
  PlanIterationCreated: { 1: upcastModelInvocationToReplyFacts },
  PlanningModelFailed: { 1: upcastModelFailureToReplyFacts },
  SynthesisModelInvoked: { 1: upcastModelInvocationToReplyFacts },
  SynthesisModelFailed: { 1: upcastModelFailureToReplyFacts },
}

/** What a reader knows about the catalog: the current version of each type and how to raise older ones. */
export interface EventCatalogVersions {
  readonly current: Readonly<Record<AnnalistEventType, number>>
  readonly upcasters: Upcasters
}

/** This build's catalog: CURRENT_SCHEMA_VERSION and UPCASTERS. */
export const CURRENT_CATALOG: EventCatalogVersions = { current: CURRENT_SCHEMA_VERSION, upcasters: UPCASTERS }

function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
}

function parseEvent(candidate: { type: string; data: unknown; metadata: unknown }): AnnalistEvent {
  const parsed = AnnalistEvent.safeParse(candidate)
  if (!parsed.success) throw new EventSchemaError(candidate.type, describeIssues(parsed.error))
  return parsed.data
}

/**
 * Validates an event before it is written: its schema, and that it is written at its type's current version (older
 * versions are only ever read, through upcasters). Throws EventSchemaError naming every failing field.
 */
export function validateEvent(candidate: { type: string; data: unknown; metadata: unknown }): AnnalistEvent {
  if (!isAnnalistEventType(candidate.type)) throw new UnknownEventTypeError(candidate.type, schemaVersionOf(candidate.metadata))
  const event = parseEvent(candidate)
  const current = CURRENT_SCHEMA_VERSION[event.type]
  if (event.metadata.schemaVersion !== current) {
    throw new EventSchemaError(event.type, [
      `metadata.schemaVersion: ${event.type} is written at schema version ${current}, got ${event.metadata.schemaVersion} (older versions are read through upcasters, never written)`,
    ])
  }
  return event
}

function schemaVersionOf(metadata: unknown): number | undefined {
  const version = metadata !== null && typeof metadata === 'object' ? (metadata as Record<string, unknown>).schemaVersion : undefined
  return typeof version === 'number' && Number.isSafeInteger(version) ? version : undefined
}

/**
 * Reads a stored event: upcasts its data step by step (v1 -> v2 -> ... -> current), then validates the result against
 * the current schema, so what an upcaster produces is checked like anything written. An unknown type, a missing or
 * future version, or a gap in the upcaster chain throws UnknownEventTypeError naming the type and version; an upcaster
 * that fails, or whose output fails the schema, throws EventSchemaError. Nothing is ever dropped silently.
 * `catalog` defaults to this build's; tests pass another to exercise longer chains.
 */
export function readEvent(stored: { type: string; data: unknown; metadata: unknown }, catalog: EventCatalogVersions = CURRENT_CATALOG): AnnalistEvent {
  const storedVersion = schemaVersionOf(stored.metadata)
  if (!isAnnalistEventType(stored.type)) throw new UnknownEventTypeError(stored.type, storedVersion)
  const current = catalog.current[stored.type]
  if (storedVersion === undefined || storedVersion < 1 || storedVersion > current) {
    throw new UnknownEventTypeError(stored.type, storedVersion, `this build reads ${stored.type} schema versions 1 to ${current}`)
  }
  let data = stored.data
  for (let version = storedVersion; version < current; version++) {
    const upcast = catalog.upcasters[stored.type]?.[version]
    if (!upcast) throw new UnknownEventTypeError(stored.type, storedVersion, `this build has no upcaster from ${stored.type} v${version} to v${version + 1}`)
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      throw new EventSchemaError(stored.type, [`(root): stored v${storedVersion} data is not an object, so it cannot be upcast`])
    }
    try {
      data = upcast(data as Record<string, unknown>)
    } catch (error) {
      throw new EventSchemaError(stored.type, [`upcasting v${version} -> v${version + 1} failed: ${error instanceof Error ? error.message : String(error)}`])
    }
  }
  const metadata = { ...(stored.metadata as Record<string, unknown>), schemaVersion: current }
  if (storedVersion === current) return parseEvent({ type: stored.type, data, metadata })
  try {
    return parseEvent({ type: stored.type, data, metadata })
  } catch (error) {
    if (!(error instanceof EventSchemaError)) throw error
    throw new EventSchemaError(stored.type, [...error.issues, `(stored as v${storedVersion}, upcast to v${current})`])
  }
}
