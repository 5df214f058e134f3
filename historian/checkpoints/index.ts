export { Checkpoint, checkpointRef, type UnsignedCheckpoint } from './checkpoint'
export { checkpointAt, REPLAYABLE_STEPS, taskStateSha256, type StepBoundary } from './checkpointAt'
export { CheckpointInvalidError, CheckpointProblem, StepNotReachedError } from './checkpointErrors'
export { checkpointKey, checkpointSignature, makeCheckpoint, signCheckpoint, verifyCheckpoint } from './signCheckpoint'
