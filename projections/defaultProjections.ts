import { analyticsProjection } from './analytics/projection'
import { auditTimelineProjection } from './auditTimeline/projection'
import type { Projection } from './projection'
import { taskDeadLettersProjection } from './taskDeadLetters/projection'
import { taskSummaryProjection } from './taskSummary/projection'

/** The read models a projector maintains by default. */
export function defaultProjections(): Projection[] {
  return [auditTimelineProjection(), taskSummaryProjection(), analyticsProjection(), taskDeadLettersProjection()]
}
