/** Thrown when a lifecycle decision cannot be taken as asked; nothing is recorded. */
export class LifecycleDecisionError extends Error {
  constructor(
    readonly targetStream: string,
    problem: string,
  ) {
    super(`${targetStream}: ${problem}`)
    this.name = 'LifecycleDecisionError'
  }
}
