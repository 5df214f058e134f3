import type pg from 'pg'
import { accountLookupTool } from './accountLookup'
import { calculatorTool } from './calculator'
import { knowledgeBaseTool } from './knowledgeBase'
import { createSendNotificationTool } from './sendNotification'
import type { ToolDefinition } from './tool'

/** Thrown when a registry is built with an invalid or duplicate tool name. */
export class ToolRegistrationError extends Error {
  constructor(readonly toolName: string, problem: string) {
    super(`cannot register tool ${JSON.stringify(toolName)}: ${problem}`)
    this.name = 'ToolRegistrationError'
  }
}

/** The tools the planner may call, by name. */
export class ToolRegistry {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tools have heterogeneous parameter and result types
  private readonly tools = new Map<string, ToolDefinition<any, any>>()

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tools have heterogeneous parameter and result types
  constructor(tools: ToolDefinition<any, any>[]) {
    for (const tool of tools) {
      if (!/^[a-z0-9_]{1,64}$/.test(tool.name)) throw new ToolRegistrationError(tool.name, 'names must match ^[a-z0-9_]{1,64}$')
      if (this.tools.has(tool.name)) throw new ToolRegistrationError(tool.name, 'a tool with this name is already registered')
      this.tools.set(tool.name, tool)
    }
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- callers validate parameters with the tool's own schema
  get(name: string): ToolDefinition<any, any> | undefined {
    return this.tools.get(name)
  }

  /** Every registered tool, in registration order (the planner's reply schema is built from their parameter schemas). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tools have heterogeneous parameter and result types
  definitions(): ToolDefinition<any, any>[] {
    return [...this.tools.values()]
  }

  /** Names and descriptions, in registration order, as the planning prompt shows them. */
  list(): { name: string; description: string }[] {
    return [...this.tools.values()].map(({ name, description }) => ({ name, description }))
  }
}

/** The built-in tools: calculator, search_knowledge_base, send_notification (outbox in `pool`) and lookup_account. */
export function createDefaultTools(deps: { pool: pg.Pool }): ToolRegistry {
  return new ToolRegistry([calculatorTool, knowledgeBaseTool, createSendNotificationTool({ pool: deps.pool }), accountLookupTool])
}
