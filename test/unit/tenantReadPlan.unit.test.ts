import { describe, expect, it } from 'vitest'
import { summarizeTenantReadPlan, type ExplainPlanNode } from '../../bench/tenantReadPlan'

/** The shape PostgreSQL 15 gives `readTenantLog` on a store of many tenants (trimmed to the fields the summary reads). */
const indexPlan: ExplainPlanNode = {
  'Node Type': 'Limit',
  'Actual Rows': 100,
  'Actual Loops': 1,
  'Shared Hit Blocks': 280,
  'Shared Read Blocks': 23,
  Plans: [
    {
      'Node Type': 'Sort',
      Plans: [
        {
          'Node Type': 'Nested Loop',
          Plans: [
            {
              'Node Type': 'Bitmap Heap Scan',
              'Relation Name': 'events',
              'Actual Rows': 100,
              'Actual Loops': 1,
              'Rows Removed by Index Recheck': 0,
              Plans: [{ 'Node Type': 'Bitmap Index Scan', 'Index Name': 'events_tenant_position_idx', 'Actual Rows': 100, 'Actual Loops': 1 }],
            },
            {
              'Node Type': 'Limit',
              'Actual Rows': 0,
              'Actual Loops': 100,
              Plans: [{ 'Node Type': 'Index Scan', 'Relation Name': 'stream_metadata', 'Index Name': 'stream_metadata_pkey', 'Actual Rows': 0, 'Actual Loops': 100 }],
            },
            {
              'Node Type': 'Result',
              Plans: [
                {
                  'Node Type': 'Limit',
                  Plans: [{ 'Node Type': 'Index Only Scan', 'Relation Name': 'events', 'Index Name': 'events_stream_revision_key', 'Actual Rows': 0, 'Actual Loops': 0 }],
                },
              ],
            },
          ],
        },
      ],
    },
  ],
}

describe('summarizeTenantReadPlan', () => {
  it("reports the events indexes used, the events rows read over all loops, and the plan's shared buffers", () => {
    expect(summarizeTenantReadPlan(indexPlan)).toEqual({
      indexUsed: true,
      indexes: ['events_tenant_position_idx'],
      nodes: 'Limit > Sort > Nested Loop > Bitmap Heap Scan > Bitmap Index Scan > Limit > Index Scan > Result > Limit > Index Only Scan',
      rowsRead: 100,
      rowsRemoved: 0,
      sharedBlocks: 303,
    })
  })

  it('does not count an index of another table, nor a subplan that never ran', () => {
    const summary = summarizeTenantReadPlan(indexPlan)
    expect(summary.indexes).not.toContain('stream_metadata_pkey')
    expect(summary.indexes).not.toContain('events_stream_revision_key')
    expect(summary.rowsRead).toBe(100)
  })

  it('reports a sequential scan of events as no index used, with the rows it read and threw away', () => {
    const seqScan: ExplainPlanNode = {
      'Node Type': 'Limit',
      'Shared Hit Blocks': 412,
      Plans: [
        {
          'Node Type': 'Sort',
          Plans: [{ 'Node Type': 'Seq Scan', 'Relation Name': 'events', 'Actual Rows': 3, 'Actual Loops': 1, 'Rows Removed by Filter': 6000 }],
        },
      ],
    }
    expect(summarizeTenantReadPlan(seqScan)).toEqual({
      indexUsed: false,
      indexes: [],
      nodes: 'Limit > Sort > Seq Scan',
      rowsRead: 3,
      rowsRemoved: 6000,
      sharedBlocks: 412,
    })
  })

  it('is not fooled by an index used elsewhere in a plan that also scans events sequentially', () => {
    const mixed: ExplainPlanNode = {
      'Node Type': 'Nested Loop',
      Plans: [
        { 'Node Type': 'Seq Scan', 'Relation Name': 'events', 'Actual Rows': 100, 'Actual Loops': 1 },
        { 'Node Type': 'Index Only Scan', 'Relation Name': 'events', 'Index Name': 'events_stream_revision_key', 'Actual Rows': 1, 'Actual Loops': 100 },
      ],
    }
    const summary = summarizeTenantReadPlan(mixed)
    expect(summary.indexUsed).toBe(false)
    expect(summary.rowsRead).toBe(200)
  })
})
