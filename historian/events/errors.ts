/** Thrown when an event's data or metadata fails its zod schema; nothing is written. */
export class EventSchemaError extends Error {
  constructor(
    readonly eventType: string,
    readonly issues: readonly string[],
  ) {
    super(`event ${eventType} fails its schema: ${issues.join('; ')}`)
    this.name = 'EventSchemaError'
  }
}

/**
 * Thrown when a stored event has a type, or a schema version of a known type, that this build cannot read. It names
 * both; readers surface it (a projection dead-letters the event) and never skip the event silently.
 */
export class UnknownEventTypeError extends Error {
  constructor(
    readonly eventType: string,
    readonly schemaVersion: number | undefined,
    /** Why a known type cannot be read, e.g. the versions this build reads; absent for an unknown type. */
    readonly reason?: string,
  ) {
    const version = `schema version ${schemaVersion ?? 'missing'}`
    super(
      reason === undefined
        ? `unknown event type ${eventType} (${version}): this build cannot read it`
        : `unknown event version: ${eventType} ${version}: ${reason}`,
    )
    this.name = 'UnknownEventTypeError'
  }
}
