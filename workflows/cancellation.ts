import { CancellationScope, condition, defineUpdate, setHandler } from '@temporalio/workflow'
import { cancelUpdateName, type CancelOutcome, type CancelRequest } from './api'

/** Update: cancel the pipeline on someone's behalf; answers once the run has recorded how it ended. */
export const cancelUpdate = defineUpdate<CancelOutcome, [CancelRequest]>(cancelUpdateName)

/** The longest requester and reason a cancel accepts: what AgentTaskCancelled can record. */
const MAX_REQUESTER = 200
const MAX_REASON = 1_000

/** Refuses a cancel request that AgentTaskCancelled could not record, before it is written to history. */
function validateCancelRequest(request: CancelRequest): void {
  const requestedBy: unknown = request?.requestedBy
  const reason: unknown = request?.reason
  if (typeof requestedBy !== 'string' || requestedBy.trim() === '' || requestedBy.length > MAX_REQUESTER) {
    throw new Error(`a cancel needs who asks for it: 1 to ${MAX_REQUESTER} characters`)
  }
  if (typeof reason !== 'string' || reason.trim() === '' || reason.length > MAX_REASON) throw new Error(`a cancel needs a reason: 1 to ${MAX_REASON} characters`)
}

/**
 * The cancellable part of a pipeline run and the cancel Update that cancels it. The Update records the first request
 * (later ones get the same answer), cancels `scope`, and answers when the run has recorded its ending: cancelled, or
 * completed or failed if the request came too late. A cancel from outside Annalist (Temporal's UI or CLI) cancels the
 * root scope, and so `scope` too, with no request: the recorded cancel then names no requester.
 */
export class PipelineCancellation {
  /** The run's working steps (route to synthesize); its ending is recorded outside it, in a non-cancellable scope. */
  readonly scope = new CancellationScope()
  private firstRequest: CancelRequest | undefined
  private ending: CancelOutcome | undefined

  constructor() {
    setHandler(
      cancelUpdate,
      async (request) => {
        this.firstRequest ??= { requestedBy: request.requestedBy.trim(), reason: request.reason.trim() }
        this.scope.cancel()
        await condition(() => this.ending !== undefined)
        return this.ending!
      },
      { validator: validateCancelRequest },
    )
  }

  /** The accepted request, if the cancel came through the Update. */
  get request(): CancelRequest | undefined {
    return this.firstRequest
  }

  /** Records how the run ended, which answers every cancel request waiting for it. */
  ended(outcome: CancelOutcome): void {
    this.ending = outcome
  }
}
