import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, ActivityInterceptorsFactory, Next } from '@temporalio/worker'
import { toApplicationFailure } from './failures'
import { waitingOutStoreOutages } from './storeOutage'

/**
 * Around every activity: waits out an event-store outage inside the attempt instead of spending one
 * (waitingOutStoreOutages), and lets domain errors cross the Temporal boundary as typed ApplicationFailures
 * (toApplicationFailure), which the workflow branches on.
 */
export class FailureTranslationInterceptor implements ActivityInboundCallsInterceptor {
  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      return await waitingOutStoreOutages(() => next(input))
    } catch (error) {
      throw toApplicationFailure(error)
    }
  }
}

/** The cross-cutting concerns of the pipeline's activities, registered by every worker (and by activity tests). */
export const activityInterceptors: ActivityInterceptorsFactory[] = [() => ({ inbound: new FailureTranslationInterceptor() })]
