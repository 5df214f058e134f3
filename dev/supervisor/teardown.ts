/** Cleanup steps, run in reverse order however a run ends; a failing step is reported and the others still run. */
export class Teardown {
  private readonly steps: (() => Promise<unknown>)[] = []

  add(step: () => Promise<unknown>): void {
    this.steps.push(step)
  }

  async run(): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) await step().catch((error: unknown) => console.error(`cleanup: ${(error as Error).message}`))
  }
}
