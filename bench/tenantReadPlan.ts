import type { Database } from '../historian/adapters/postgres/database'
import { PostgresEventStore } from '../historian/adapters/postgres/postgresEventStore'

/** What PostgreSQL did to read one tenant's log, from `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`. */
export interface TenantReadPlan {
  /** True when the plan reached `events` through an index and never scanned it sequentially. */
  readonly indexUsed: boolean
  /** The indexes of `events` the plan read (a subplan that never ran does not count). */
  readonly indexes: readonly string[]
  /** The plan's node types, depth first from the root, e.g. `Limit > Sort > Bitmap Heap Scan > Bitmap Index Scan`. */
  readonly nodes: string
  /** Rows of `events` the plan's scans produced, over all their loops. */
  readonly rowsRead: number
  /** Rows of `events` the scans looked at and threw away (filter or recheck): other tenants' rows, if there were any. */
  readonly rowsRemoved: number
  /** Shared buffers (8 KiB pages of tables and indexes) the whole plan touched, hit or read. */
  readonly sharedBlocks: number
}

/** One node of a JSON plan, as far as the summary needs it. */
export interface ExplainPlanNode {
  readonly 'Node Type': string
  readonly 'Relation Name'?: string
  readonly 'Index Name'?: string
  readonly 'Actual Rows'?: number
  readonly 'Actual Loops'?: number
  readonly 'Rows Removed by Filter'?: number
  readonly 'Rows Removed by Index Recheck'?: number
  readonly 'Shared Hit Blocks'?: number
  readonly 'Shared Read Blocks'?: number
  readonly Plans?: readonly ExplainPlanNode[]
}

/**
 * Runs `readTenantLog(tenantId)` through a PostgresEventStore whose pool records the SQL it sends, then runs that exact
 * statement, with the same parameters, under `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`: the plan of the query the
 * store really issues, not of a copy of it.
 */
export async function explainTenantLogRead(database: Database, tenantId: string): Promise<TenantReadPlan> {
  const sent: { text: string; values: unknown[] }[] = []
  const recordingPool = new Proxy(database.pool, {
    get(target, property) {
      if (property === 'query') {
        return (text: string, values?: unknown[]) => {
          sent.push({ text, values: values ?? [] })
          return target.query(text, values)
        }
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  const probe = new PostgresEventStore({ ...database, pool: recordingPool })
  await probe.readTenantLog(tenantId)
  if (sent.length !== 1) throw new Error(`readTenantLog sent ${sent.length} statements; expected exactly one to explain`)
  const { text, values } = sent[0]!
  const { rows } = await database.pool.query<{ 'QUERY PLAN': [{ Plan: ExplainPlanNode }] }>(`explain (analyze, buffers, format json) ${text}`, values)
  const plan = rows[0]?.['QUERY PLAN'][0]?.Plan
  if (!plan) throw new Error('EXPLAIN returned no plan')
  return summarizeTenantReadPlan(plan)
}

/** Sums up a JSON plan's scans of the `events` table. Pure. */
export function summarizeTenantReadPlan(plan: ExplainPlanNode): TenantReadPlan {
  const all: ExplainPlanNode[] = []
  const eventsIndexes = new Set<string>()
  // A Bitmap Index Scan names its index but not its table: it reads for the Bitmap Heap Scan above it.
  const walk = (node: ExplainPlanNode, parentRelation: string | undefined) => {
    all.push(node)
    const relation = node['Relation Name'] ?? (node['Node Type'] === 'Bitmap Index Scan' ? parentRelation : undefined)
    const executed = node['Actual Loops'] !== 0 // EXPLAIN ANALYZE reports a subplan that never ran with 0 loops
    if (relation === 'events' && node['Index Name'] && executed) eventsIndexes.add(node['Index Name'])
    for (const child of node.Plans ?? []) walk(child, node['Relation Name'] ?? parentRelation)
  }
  walk(plan, undefined)
  const eventScans = all.filter((node) => node['Relation Name'] === 'events')
  return {
    indexUsed: eventsIndexes.size > 0 && !eventScans.some((node) => node['Node Type'] === 'Seq Scan'),
    indexes: [...eventsIndexes],
    nodes: all.map((node) => node['Node Type']).join(' > '),
    rowsRead: eventScans.reduce((sum, node) => sum + (node['Actual Rows'] ?? 0) * (node['Actual Loops'] ?? 1), 0),
    rowsRemoved: eventScans.reduce((sum, node) => sum + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0), 0),
    sharedBlocks: (plan['Shared Hit Blocks'] ?? 0) + (plan['Shared Read Blocks'] ?? 0),
  }
}
