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
  /**
   * True when applying an event late, after events that follow it in the log, leaves the same rows as applying it in
   * order (rows keyed by the event's position, say; no fold over earlier state). A dead-letter retry then applies just
   * that event; otherwise (the default) a retry rebuilds the projection so that the event lands in its place in the log.
   */
  readonly orderIndependent?: boolean
  apply(client: pg.PoolClient, event: StoredEvent, tables: ProjectionTables<TableName>): Promise<void>
  /**
   * Optional: writes the rows for several events, in log order, with as few statements as it can. Same contract as
   * `apply` (idempotent, values only from the events, SQL only from `tables`), and it must leave EXACTLY the rows that
   * applying the events one by one would. The runner and the rebuild call it under one savepoint per batch; if it
   * throws, they roll the batch back and apply its events one at a time, so that a poison event is isolated.
   */
  applyBatch?(client: pg.PoolClient, events: readonly StoredEvent[], tables: ProjectionTables<TableName>): Promise<void>
  /**
   * Optional: deletes every row that events of one task's stream produced, so that a lifecycle decision can refold the
   * task from the events that survive it (projections/lifecycleFollower.ts; docs/lifecycle.md). A projection without
   * it keeps the rows of events that decisions hide, and then no longer equals a rebuild after a decision.
   */
  forgetTask?(client: pg.PoolClient, tables: ProjectionTables<TableName>, tenantId: string, taskId: string): Promise<void>
}

/**
 * forgetTask for a projection whose every table keys its rows by `tenant_id` and `task_id` and holds rows of task
 * streams only (all of Annalist's read models): deletes the task's rows from each table.
 */
export function forgetTaskRows<TableName extends string>(): NonNullable<Projection<TableName>['forgetTask']> {
  return async (client, tables, tenantId, taskId) => {
    for (const table of Object.values<string>(tables)) await client.query(`delete from ${table} where tenant_id = $1 and task_id = $2`, [tenantId, taskId])
  }
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

/** A column of a multi-row insert: its name and SQL type, both constants of the projection (never event data). */
export interface RowColumn {
  readonly name: string
  readonly type: string
}

/**
 * Inserts `rows` (values in `columns` order) into `table` in one statement: each column travels as one array
 * parameter and `unnest` turns the arrays back into rows, so the statement text does not grow with the batch.
 * `tail` follows the insert (an `on conflict` clause).
 */
export async function insertRows(client: pg.ClientBase, table: string, columns: readonly RowColumn[], rows: readonly (readonly unknown[])[], tail: string): Promise<void> {
  if (rows.length === 0) return
  const names = columns.map((column) => column.name).join(', ')
  const arrays = columns.map((_, index) => rows.map((row) => row[index]))
  const unnested = columns.map((column, index) => `$${index + 1}::${column.type}[]`).join(', ')
  await client.query(`insert into ${table} (${names}) select * from unnest(${unnested}) ${tail}`, arrays)
}
