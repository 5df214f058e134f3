import type pg from 'pg'
import type { StoredEvent } from '../../historian/historian'
import { forgetTaskRows, insertRows, type Projection, type ProjectionTables, type RowColumn } from '../projection'

/** Name of the task dead-letter projection (its checkpoint and dead-letter key). */
export const TASK_DEAD_LETTERS_PROJECTION = 'task_dead_letters'

type TaskDeadLettersTable = 'task_dead_letters'

/** Where a dead-lettered run stands: waiting for a redrive, or redriven. */
export const DeadLetterStatus = { open: 'open', redriven: 'redriven' } as const
export type DeadLetterStatus = (typeof DeadLetterStatus)[keyof typeof DeadLetterStatus]

const INSERT_COLUMNS: readonly RowColumn[] = [
  { name: 'tenant_id', type: 'text' },
  { name: 'task_id', type: 'text' },
  { name: 'run_id', type: 'text' },
  { name: 'position', type: 'bigint' },
  { name: 'event_id', type: 'text' },
  { name: 'failed_step', type: 'text' },
  { name: 'error_code', type: 'text' },
  { name: 'message', type: 'text' },
  { name: 'attempts', type: 'integer' },
  { name: 'retry_state', type: 'text' },
  { name: 'failures', type: 'jsonb' },
  { name: 'dead_lettered_at', type: 'timestamptz' },
  { name: 'status', type: 'text' },
]

/** A redrive as the update needs it. */
interface Redrive {
  readonly key: string
  readonly tenantId: string
  readonly taskId: string
  readonly parentRunId: string
  readonly runId: string
  readonly requestedBy: string
  readonly note: string | null
  readonly occurredAt: string
  readonly position: bigint
}

const runKey = (tenantId: string, taskId: string, runId: string) => JSON.stringify([tenantId, taskId, runId])

/**
 * Dead-lettered tasks: one row per pipeline run that exhausted a step's retries (TaskDeadLettered), keyed by tenant,
 * task and run, with the full error context; TaskRunStarted with reason `redrive` marks its parent run's row redriven
 * (who, when, the new run). Idempotent: a dead letter inserts only when its run has no row, and a redrive updates only
 * a row no redrive has marked yet, so applying an event twice, or in a rebuild, changes nothing.
 *
 * A batch inserts the first dead letter of each run and then marks the first redrive of each run, skipping a redrive
 * that comes before its run's dead letter in the batch, exactly as applying the events one by one would.
 */
export function taskDeadLettersProjection(): Projection<TaskDeadLettersTable> {
  const applyBatch = async (client: pg.PoolClient, events: readonly StoredEvent[], tables: ProjectionTables<TaskDeadLettersTable>): Promise<void> => {
    const letters = new Map<string, { position: bigint; row: unknown[] }>()
    const redrives = new Map<string, Redrive>()
    for (const stored of events) {
      const { event } = stored
      const { tenantId, taskId } = event.metadata
      if (event.type === 'TaskDeadLettered') {
        const runId = event.data.runId ?? event.metadata.runId
        const key = runKey(tenantId, taskId, runId)
        if (letters.has(key)) continue
        const { failedStep, errorCode, message, attempts, retryState, failures } = event.data
        letters.set(key, {
          position: stored.position,
          row: [tenantId, taskId, runId, stored.position.toString(), stored.eventId, failedStep, errorCode, message, attempts, retryState, JSON.stringify(failures), event.metadata.occurredAt, DeadLetterStatus.open],
        })
      } else if (event.type === 'TaskRunStarted' && event.data.reason === 'redrive') {
        const key = runKey(tenantId, taskId, event.data.parentRunId)
        const letter = letters.get(key)
        if (redrives.has(key) || (letter !== undefined && letter.position > stored.position)) continue
        redrives.set(key, {
          key,
          tenantId,
          taskId,
          parentRunId: event.data.parentRunId,
          runId: event.metadata.runId,
          requestedBy: event.data.requestedBy,
          note: event.data.note ?? null,
          occurredAt: event.metadata.occurredAt,
          position: stored.position,
        })
      }
    }
    await insertRows(
      client,
      tables.task_dead_letters,
      INSERT_COLUMNS,
      [...letters.values()].map((letter) => letter.row),
      'on conflict (tenant_id, task_id, run_id) do nothing',
    )
    if (redrives.size === 0) return
    const marks = [...redrives.values()]
    await client.query(
      `update ${tables.task_dead_letters} d
          set status = 'redriven', redriven_by = r.requested_by, redriven_at = r.occurred_at, redrive_run_id = r.run_id,
              redrive_note = r.note, redrive_position = r.position
         from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::bigint[])
              as r(tenant_id, task_id, parent_run_id, run_id, requested_by, note, occurred_at, position)
        where d.tenant_id = r.tenant_id and d.task_id = r.task_id and d.run_id = r.parent_run_id
          and d.redrive_run_id is null and d.position < r.position`,
      [
        marks.map((mark) => mark.tenantId),
        marks.map((mark) => mark.taskId),
        marks.map((mark) => mark.parentRunId),
        marks.map((mark) => mark.runId),
        marks.map((mark) => mark.requestedBy),
        marks.map((mark) => mark.note),
        marks.map((mark) => mark.occurredAt),
        marks.map((mark) => mark.position.toString()),
      ],
    )
  }
  return {
    name: TASK_DEAD_LETTERS_PROJECTION,
    forgetTask: forgetTaskRows(),
    tables: ['task_dead_letters'],
    applyBatch,
    apply: (client, stored, tables) => applyBatch(client, [stored], tables),
  }
}
