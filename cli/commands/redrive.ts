import { userInfo } from 'node:os'
import { Client, Connection } from '@temporalio/client'
import { assertTaskId, assertTenantId } from '../../historian/streams'
import { InvalidQueryError } from '../../projections/queryFilters'
import type { AgentPipelineResult } from '../../workflows/api'
import { authorizeCaller } from '../runtime/callerPermission'
import { loadConfig, requireIntegrityKeyRing } from '../runtime/config'
import { redriveTask } from '../runtime/redriveRequest'
import { openStorage } from '../runtime/storage'

/** The options of `annalist redrive`, as commander parses them. */
export interface RedriveOptions {
  readonly tenant: string
  readonly task: string
  readonly by?: string
  readonly note?: string
  readonly wait?: boolean
  readonly resume?: boolean
}

/** Who redrives: `--by`, else the OS user name; 1 to 200 printable characters, or InvalidQueryError naming `--by`. */
export function redriveRequester(by: string | undefined, osUser: () => string = () => userInfo().username): string {
  let name = by
  if (name === undefined) {
    try {
      name = osUser()
    } catch {
      name = process.env.USER ?? ''
    }
    if (name.trim() === '') throw new InvalidQueryError('--by', 'the OS user name is unknown here; say who redrives with --by NAME')
  }
  const trimmed = name.trim()
  if (trimmed.length < 1 || trimmed.length > 200 || /[\p{Cc}]/u.test(trimmed)) throw new InvalidQueryError('--by', 'must be 1 to 200 printable characters')
  return trimmed
}

/**
 * `annalist redrive --tenant T --task K [--by NAME] [--note TEXT] [--wait]`: starts a dead-lettered task again from its
 * failed step as a new run linked to the dead-lettered one (reason `redrive`, requestedBy NAME). Decided from the task's
 * event stream and recorded there as RedriveRequested before the run starts (requestRedrive): a task that is not
 * dead-lettered, whose dead letter was redriven already, or whose redrive another operator requested first, is refused
 * with one line and nothing is started. Needs task.redrive on the tenant (ANNALIST_API_KEY). `--resume` repeats a redrive whose request was recorded but whose run never started. With --wait, prints the new run's result and exits 2 if it failed.
 */
export async function redriveCommand(options: RedriveOptions): Promise<void> {
  const tenantId = assertTenantId(options.tenant)
  const taskId = assertTaskId(options.task)
  const requestedBy = redriveRequester(options.by)
  if (options.note !== undefined && options.note.length > 2_000) throw new InvalidQueryError('--note', `must be at most 2000 characters, got ${options.note.length}`)
  const config = loadConfig()
  if (!config.temporalAddress) throw new Error('TEMPORAL_ADDRESS is not set: `redrive` starts a run on a running cluster (start one with `temporal server start-dev`)')
  const keyRing = requireIntegrityKeyRing(config)
  const storage = await openStorage(config)
  try {
    await authorizeCaller(storage.database.pool, config.apiKey, 'task.redrive', tenantId)
    const connection = await Connection.connect({ address: config.temporalAddress })
    try {
      const client = new Client({ connection, namespace: config.temporalNamespace })
      // Recorded in the task's stream first, at the revision it was decided on: a concurrent redrive is refused.
      const started = await redriveTask(
        { client, historian: storage.historian, keyRing, taskQueue: config.taskQueue },
        { tenantId, taskId, requestedBy, ...(options.note === undefined ? {} : { note: options.note }), resume: options.resume === true },
      )
      const letter = started.target.deadLetter
      console.log(
        `redrive of ${tenantId}/${taskId} by ${requestedBy}: run ${started.runId} of ${started.workflowId} from step ${started.target.fromStep}, ` +
          `parent run ${started.parentRunId} (dead-lettered at step ${letter.failedStep}: ${letter.errorCode} after ${letter.attempts} attempts)`,
      )
      if (options.wait) {
        const result: AgentPipelineResult = await client.workflow.getHandle(started.workflowId, started.runId).result()
        console.log(JSON.stringify(result, null, 2))
        if (result.status !== 'completed') process.exitCode = 2
      }
    } finally {
      await connection.close()
    }
  } finally {
    await storage.close()
  }
}
