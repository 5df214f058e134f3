import { MAX_LOOP_ITERATIONS, MAX_TOOL_CALLS_PER_ITERATION, type LoopOptions } from '../../workflows/api'

/** Thrown when a pipeline is started with loop options out of range; nothing is started. */
export class InvalidLoopOptionsError extends Error {
  constructor(
    readonly field: 'maxIterations' | 'toolCallsPerIteration',
    readonly value: unknown,
    readonly min: number,
    readonly max: number,
  ) {
    super(`invalid loop option ${field}: must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`)
    this.name = 'InvalidLoopOptionsError'
  }
}

const inRange = (value: unknown, min: number, max: number) => typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max

/** Checks a long agent loop's options before its pipeline is started (docs/long-loops.md). */
export function assertLoopOptions(loop: LoopOptions): LoopOptions {
  if (!inRange(loop.maxIterations, 1, MAX_LOOP_ITERATIONS)) throw new InvalidLoopOptionsError('maxIterations', loop.maxIterations, 1, MAX_LOOP_ITERATIONS)
  if (loop.toolCallsPerIteration !== undefined && !inRange(loop.toolCallsPerIteration, 1, MAX_TOOL_CALLS_PER_ITERATION)) {
    throw new InvalidLoopOptionsError('toolCallsPerIteration', loop.toolCallsPerIteration, 1, MAX_TOOL_CALLS_PER_ITERATION)
  }
  return loop
}
