export { Checkpoint, checkpointRef, type UnsignedCheckpoint } from './checkpoint'
export { checkpointAt, taskStateSha256, type StepBoundary } from './checkpointAt'
export { CheckpointInvalidError, CheckpointProblem, StepNotReachedError } from './checkpointErrors'
export { checkpointKey, checkpointSignature, makeCheckpoint, signCheckpoint, verifyCheckpoint } from './signCheckpoint'
