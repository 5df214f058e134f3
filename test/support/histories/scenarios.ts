import type { FaultPlan } from '../../../activities/faults'

/** The pipelines whose histories are kept, so that a non-deterministic change to workflow code fails CI. */
export const HISTORY_SCENARIOS: readonly { name: string; input: string; faults?: FaultPlan }[] = [
  { name: 'completed-with-tools', input: 'Find the refund policy and notify support by email' },
  {
    name: 'failed-at-synthesis',
    input: 'Search the knowledge base for the data retention policy',
    faults: { rules: [{ target: 'synthesis', kind: 'context_length', attempts: [1, 2, 3, 4] }] },
  },
]
