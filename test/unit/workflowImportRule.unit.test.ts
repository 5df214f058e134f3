import path from 'node:path'
import { ESLint } from 'eslint'
import { describe, expect, it } from 'vitest'

const root = path.resolve(import.meta.dirname, '../..')

async function lintAsWorkflow(code: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: root })
  const [result] = await eslint.lintText(code, { filePath: path.join(root, 'workflows/probe.workflow.ts') })
  return result!.messages.filter((message) => message.ruleId === '@typescript-eslint/no-restricted-imports').map((message) => message.message)
}

describe('the workflow import rule (workflows run in Temporal sandbox)', () => {
  it.each([
    ["import fs from 'node:fs'", /Node modules/],
    ["import { readFileSync } from 'fs'", /Node modules/],
    ["import pg from 'pg'", /database clients/],
    ["import { EventStoreDBClient } from '@eventstore/db-client'", /database clients/],
    ["import { PostgresEventStore } from '../historian/adapters/postgres/postgresEventStore'", /adapters/],
    ["import { createActivities } from '../activities/pipelineActivities'", /import type/],
  ])('refuses %s', async (line, reason) => {
    const messages = await lintAsWorkflow(`${line}\nexport const used = [${line.match(/import \{? ?(\w+)/)![1]}]\n`)
    expect(messages.some((message) => reason.test(message))).toBe(true)
  })

  it('allows the workflow API, event schemas and type-only activity imports', async () => {
    const messages = await lintAsWorkflow(
      [
        "import { proxyActivities } from '@temporalio/workflow'",
        "import type { PipelineActivities } from '../activities/pipelineActivities'",
        "import { TenantId } from '../historian/events/ids'",
        "import { AGENT_PIPELINE_TASK_QUEUE } from './api'",
        'export const used: unknown[] = [proxyActivities, TenantId, AGENT_PIPELINE_TASK_QUEUE, null as unknown as PipelineActivities]',
      ].join('\n'),
    )
    expect(messages).toEqual([])
  })
})
