import pg from 'pg'
import type { StoredEvent } from '../historian/historian'

/**
 * The SQL names a projection writes to, keyed by the live table name it owns. Values are quoted identifiers, ready to
 * splice into SQL: the live tables themselves, or the scratch copies a rebuild writes to.
 */
export type ProjectionTables<TableName extends string = string> = Readonly<Record<TableName, string>>

/**
 * A read model fed from the event log. `apply` writes the rows for one event with the given client, inside the
 * runner's transaction; it must be idempotent (applying an event twice changes nothing) and must take every value
 * from the event, never from the clock, so that a rebuild from position 0 produces identical rows.
 * SQL is built only from the constant table names in `tables`; event data always travels as parameters.
 */
export interface Projection<TableName extends string = string> {
  readonly name: string
  /** The live tables this projection owns (created by a migration). */
  readonly tables: readonly TableName[]
  apply(client: pg.PoolClient, event: StoredEvent, tables: ProjectionTables<TableName>): Promise<void>
}

/** The table mapping for a projection's live tables. */
export function liveTables<TableName extends string>(projection: Projection<TableName>): ProjectionTables<TableName> {
  return tableMapping(projection, (table) => table)
}

/** The table mapping for a projection writing to `<table><suffix>` instead of its live tables. */
export function suffixedTables<TableName extends string>(projection: Projection<TableName>, suffix: string): ProjectionTables<TableName> {
  if (!/^[a-z0-9_]{1,24}$/.test(suffix)) throw new RangeError(`table suffix ${JSON.stringify(suffix)} must match ^[a-z0-9_]{1,24}$`)
  return tableMapping(projection, (table) => `${table}${suffix}`)
}

function tableMapping<TableName extends string>(projection: Projection<TableName>, rename: (table: TableName) => string): ProjectionTables<TableName> {
  const entries = projection.tables.map((table) => [table, pg.escapeIdentifier(rename(table))] as const)
  return Object.freeze(Object.fromEntries(entries)) as ProjectionTables<TableName>
}
