import { Client, Connection } from '@temporalio/client'
import { assertTaskId, assertTenantId } from '../../historian/streams'
import { InvalidQueryError } from '../../projections/queryFilters'
import { MAX_CANCEL_REASON_LENGTH, MAX_CANCEL_REQUESTER_LENGTH } from '../../historian/events'
import { requestCancel } from '../runtime/cancelRequest'
import { authorizeCallerOnce } from '../runtime/callerPermission'
import { loadConfig } from '../runtime/config'

/** The options of `annalist cancel`, as commander parses them. */
export interface CancelOptions {
  readonly tenant: string
  readonly task: string
  readonly by: string
  readonly reason: string
  readonly wait?: boolean
}

/** `text` trimmed, 1 to `max` characters with no control characters, or InvalidQueryError naming `option`. */
export function operatorText(option: string, text: string, max: number): string {
  const trimmed = text.trim()
  if (trimmed.length < 1 || trimmed.length > max || /[\p{Cc}]/u.test(trimmed)) throw new InvalidQueryError(option, `must be 1 to ${max} printable characters`)
  return trimmed
}

/**
 * `annalist cancel --tenant T --task K --by NAME --reason TEXT [--no-wait]`: cancels the task's running pipeline through
 * its cancel Update, which records who and why. The pipeline compensates its side effects and records
 * AgentTaskCancelled; the command waits for that (unless --no-wait) and prints how the run ended. A pipeline that had
 * already completed or failed when the request arrived says so, and the command exits 2. Needs task.cancel on the tenant
 * (ANNALIST_API_KEY).
 */
export async function cancelCommand(options: CancelOptions): Promise<void> {
  const task = { tenantId: assertTenantId(options.tenant), taskId: assertTaskId(options.task) }
  const request = { requestedBy: operatorText('--by', options.by, MAX_CANCEL_REQUESTER_LENGTH), reason: operatorText('--reason', options.reason, MAX_CANCEL_REASON_LENGTH) }
  const config = loadConfig()
  if (!config.temporalAddress) throw new Error('TEMPORAL_ADDRESS is not set: `cancel` talks to the cluster that runs the pipeline')
  await authorizeCallerOnce(config, 'task.cancel', task.tenantId)
  const connection = await Connection.connect({ address: config.temporalAddress })
  try {
    const client = new Client({ connection, namespace: config.temporalNamespace })
    const accepted = await requestCancel(client, task, request)
    console.log(`cancel of ${task.tenantId}/${task.taskId} by ${request.requestedBy} accepted by run ${accepted.runId}${options.wait === false ? '' : '; waiting for it to compensate and record the cancel'}`)
    if (options.wait === false) return
    const outcome = await accepted.outcome()
    if (outcome.status === 'cancelled') {
      console.log(`cancelled: AgentTaskCancelled ${outcome.terminalEventId} (requested by ${outcome.cancelledBy ?? 'someone outside Annalist'})`)
    } else {
      console.log(`not cancelled: the run had already ${outcome.status} (${outcome.terminalEventId}) when the request arrived`)
      process.exitCode = 2
    }
  } finally {
    await connection.close()
  }
}
