import type { Historian } from '../historian/historian'
import type { ModelClient } from './models/modelClient'
import type { ToolRegistry } from './tools/registry'

/** Everything the pipeline activities need, built once per worker process by its composition root. */
export interface ActivityDeps {
  readonly historian: Historian
  readonly models: ModelClient
  readonly tools: ToolRegistry
  readonly clock: () => Date
}
