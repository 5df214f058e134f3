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

/** Thrown when a stored event has a type or schema version this build cannot read. */
export class UnknownEventTypeError extends Error {
  constructor(
    readonly eventType: string,
    readonly schemaVersion: number | undefined,
  ) {
    super(`unknown event type ${eventType} (schema version ${schemaVersion ?? 'missing'}): this build cannot read it`)
    this.name = 'UnknownEventTypeError'
  }
}
