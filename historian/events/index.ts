import { z } from 'zod'
import { EventSchemaError, UnknownEventTypeError } from './errors'
import { ModelEvent } from './model'
import { TaskEvent } from './task'
import { ToolEvent } from './tool'

export * from './common'
export * from './errors'
export * from './ids'
export * from './metadata'
export * from './model'
export * from './task'
export * from './tool'

/** Every Annalist domain event, current version. */
export const AnnalistEvent = z.discriminatedUnion('type', [...TaskEvent.options, ...ModelEvent.options, ...ToolEvent.options])
export type AnnalistEvent = z.infer<typeof AnnalistEvent>
export type AnnalistEventType = AnnalistEvent['type']
export type EventOfType<T extends AnnalistEventType> = Extract<AnnalistEvent, { type: T }>

/** Current schema version of each event type. Bump it and add an upcaster when a schema changes. */
export const CURRENT_SCHEMA_VERSION = {
  AgentTaskReceived: 1,
  AgentTaskCompleted: 1,
  AgentTaskFailed: 1,
  RoutingModelInvoked: 1,
  RoutingModelFailed: 1,
  PlanCreated: 1,
  PlanningModelFailed: 1,
  SynthesisModelInvoked: 1,
  SynthesisModelFailed: 1,
  ToolCallExecuted: 1,
  ToolCallFailed: 1,
} as const satisfies Record<AnnalistEventType, number>

export const EVENT_TYPES = Object.keys(CURRENT_SCHEMA_VERSION) as AnnalistEventType[]

export function isAnnalistEventType(type: string): type is AnnalistEventType {
  return Object.hasOwn(CURRENT_SCHEMA_VERSION, type)
}

/** Raises a stored event's data from version `from` to `from + 1`. */
export type Upcaster = (data: Record<string, unknown>) => Record<string, unknown>

/** Upcasters by event type and the version they read; empty until a schema first changes. */
export const UPCASTERS: Partial<Record<AnnalistEventType, Record<number, Upcaster>>> = {}

function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
}

/** Validates an event before it is written. Throws EventSchemaError naming every failing field. */
export function validateEvent(candidate: { type: string; data: unknown; metadata: unknown }): AnnalistEvent {
  if (!isAnnalistEventType(candidate.type)) throw new UnknownEventTypeError(candidate.type, undefined)
  const parsed = AnnalistEvent.safeParse(candidate)
  if (!parsed.success) throw new EventSchemaError(candidate.type, describeIssues(parsed.error))
  return parsed.data
}

/**
 * Reads a stored event: upcasts its data to the current version, then validates it.
 * Unknown types and versions throw UnknownEventTypeError; they are never dropped silently.
 */
export function readEvent(stored: { type: string; data: unknown; metadata: unknown }): AnnalistEvent {
  if (!isAnnalistEventType(stored.type)) throw new UnknownEventTypeError(stored.type, undefined)
  const metadata = (stored.metadata ?? {}) as Record<string, unknown>
  const storedVersion = typeof metadata.schemaVersion === 'number' ? metadata.schemaVersion : undefined
  const current = CURRENT_SCHEMA_VERSION[stored.type]
  if (storedVersion === undefined || storedVersion < 1 || storedVersion > current) {
    throw new UnknownEventTypeError(stored.type, storedVersion)
  }
  let data = stored.data as Record<string, unknown>
  for (let version = storedVersion; version < current; version++) {
    const upcast = UPCASTERS[stored.type]?.[version]
    if (!upcast) throw new UnknownEventTypeError(stored.type, version)
    data = upcast(data)
  }
  return validateEvent({ type: stored.type, data, metadata: { ...metadata, schemaVersion: current } })
}
