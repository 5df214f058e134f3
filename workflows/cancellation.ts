import { CancellationScope, condition, defineUpdate, setHandler } from '@temporalio/workflow'
import { cancelRequestProblem, cancelUpdateName, type CancelOutcome, type CancelRequest, type PipelineStep } from './api'

/** Update: cancel the pipeline on someone's behalf; answers once the run has recorded how it ended. */
export const cancelUpdate = defineUpdate<CancelOutcome, [CancelRequest]>(cancelUpdateName)

/** Refuses a cancel request that AgentTaskCancelled could not record, before it is written to history. */
function validateCancelRequest(request: CancelRequest): void {
  const problem = cancelRequestProblem(request)
  if (problem !== undefined) throw new Error(problem)
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
  private stepAtCancel: PipelineStep | undefined

  /** `currentStep` tells the step the run is in, so that the recorded cancel names the step it was asked in. */
  constructor(currentStep: () => PipelineStep) {
    // Rejected when the scope is cancelled, by the Update or with the root scope by Temporal's own cancel.
    this.scope.cancelRequested.catch(() => (this.stepAtCancel ??= currentStep()))
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

  /** The step the run was in when the cancel came, if one came. */
  get cancelledStep(): PipelineStep | undefined {
    return this.stepAtCancel
  }

  /** Records how the run ended, which answers every cancel request waiting for it. */
  ended(outcome: CancelOutcome): void {
    this.ending = outcome
  }
}
