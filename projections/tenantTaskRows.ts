import type pg from 'pg'

/** Validated filters of a tenant's task-keyed read model, ready to bind (`null`: no filter). */
export interface TenantTaskFilters {
  readonly tenantId: string
  readonly taskId: string | null
  readonly status: string | null
  readonly limit: number
}

/**
 * One tenant's rows of a task-keyed read model table (optionally one task's, or those in one status) in `orderBy`
 * order, at most `limit`. The caller validates the filters; the query always filters on the tenant.
 */
export async function tenantTaskRows<Row extends pg.QueryResultRow>(
  pool: pg.Pool,
  table: 'task_summary' | 'task_dead_letters',
  orderBy: 'first_position' | 'position',
  { tenantId, taskId, status, limit }: TenantTaskFilters,
): Promise<Row[]> {
  const result = await pool.query<Row>(
    `select * from ${table}
      where tenant_id = $1 and ($2::text is null or task_id = $2::text) and ($3::text is null or status = $3::text)
      order by ${orderBy}
      limit $4`,
    [tenantId, taskId, status, limit],
  )
  return result.rows
}
