import { assertTenantId } from '../../historian/streams'
import {
  costPerTenantPerDay,
  failureKind,
  failuresByStep,
  failureStep,
  modelInvocationStats,
  toolUsage,
  type FailureKind,
  type FailureStep,
  type ModelInvocationStats,
  type StepFailureCount,
  type TenantDayCost,
  type ToolUsage,
} from '../../projections/analytics/query'
import { filterValue, timeWindow } from '../../projections/queryFilters'
import { loadConfig } from '../runtime/config'
import { formatRows, type OutputColumn, type OutputFormat } from '../runtime/output'
import { openStorage } from '../runtime/storage'

/** The reports `annalist analytics` prints. */
export const ANALYTICS_REPORTS = ['failures', 'models', 'costs', 'tools'] as const
export type AnalyticsReport = (typeof ANALYTICS_REPORTS)[number]

export interface AnalyticsOptions {
  readonly from?: string
  readonly to?: string
  readonly step?: string
  readonly errorCode?: string
  readonly kind?: string
  readonly tenant?: string
  readonly format: OutputFormat
}

const FAILURE_COLUMNS: readonly OutputColumn<StepFailureCount>[] = [
  { key: 'tenantId', header: 'tenant' },
  { key: 'step', header: 'step' },
  { key: 'errorCode', header: 'error code' },
  { key: 'failures', header: 'failures' },
  { key: 'attemptFailures', header: 'attempts failed' },
  { key: 'taskFailures', header: 'tasks failed' },
  { key: 'tasks', header: 'tasks' },
  { key: 'lastFailedAt', header: 'last failed at' },
]

const MODEL_COLUMNS: readonly OutputColumn<ModelInvocationStats>[] = [
  { key: 'provider', header: 'provider' },
  { key: 'modelId', header: 'model' },
  { key: 'modelVersion', header: 'version' },
  { key: 'invocations', header: 'calls' },
  { key: 'failures', header: 'failures' },
  { key: 'latencyP50Ms', header: 'p50 ms' },
  { key: 'latencyP99Ms', header: 'p99 ms' },
  { key: 'inputTokens', header: 'input tokens' },
  { key: 'outputTokens', header: 'output tokens' },
  { key: 'costUsd', header: 'cost usd' },
  { key: 'failedCallCostUsd', header: 'failed calls usd' },
  { key: 'callsWithoutReportedUsage', header: 'calls w/o usage' },
  { key: 'estimatedUnreportedTokens', header: 'est. tokens' },
  { key: 'estimatedUnreportedCostUsd', header: 'est. usd' },
]

const COST_COLUMNS: readonly OutputColumn<TenantDayCost>[] = [
  { key: 'tenantId', header: 'tenant' },
  { key: 'day', header: 'day (UTC)' },
  { key: 'costUsd', header: 'cost usd' },
  { key: 'failedCallCostUsd', header: 'failed calls usd' },
  { key: 'estimatedUnreportedCostUsd', header: 'est. unreported usd' },
  { key: 'tokens', header: 'tokens' },
  { key: 'tasks', header: 'tasks' },
]

const TOOL_COLUMNS: readonly OutputColumn<ToolUsage>[] = [
  { key: 'toolName', header: 'tool' },
  { key: 'calls', header: 'calls' },
  { key: 'failures', header: 'failures' },
  { key: 'failureRate', header: 'failure rate' },
  { key: 'latencyP50Ms', header: 'p50 ms' },
]

/** Options only the failures report understands. */
const FAILURE_ONLY = { step: '--step', errorCode: '--error-code', kind: '--kind' } as const

/**
 * Checks every option before anything is opened, so bad input writes nothing (not even a new embedded database):
 * the queries check them again, with the same helpers, before any SQL. Returns the checked failure filters.
 */
function checkOptions(report: AnalyticsReport, options: AnalyticsOptions, now: Date): { step?: FailureStep; kind?: FailureKind } {
  if (report !== 'failures') {
    for (const [key, flag] of Object.entries(FAILURE_ONLY)) {
      if (options[key as keyof typeof FAILURE_ONLY] !== undefined) throw new RangeError(`${flag} applies only to \`analytics failures\`, not to \`analytics ${report}\``)
    }
  }
  timeWindow(options, now, report === 'failures' ? 1 : 30)
  if (options.tenant !== undefined) assertTenantId(options.tenant)
  if (options.errorCode !== undefined) filterValue('errorCode', options.errorCode)
  return {
    step: options.step === undefined ? undefined : failureStep(options.step),
    kind: options.kind === undefined ? undefined : failureKind(options.kind),
  }
}

/**
 * `annalist analytics <failures|models|costs|tools>`: cross-tenant analytics from the read model, as a table, JSON or
 * CSV. Windows are [--from, --to): the last 24 hours for failures, 30 days otherwise, by default.
 */
export async function analyticsCommand(report: AnalyticsReport, options: AnalyticsOptions): Promise<void> {
  const now = new Date()
  const { step, kind } = checkOptions(report, options, now)
  const window = { from: options.from, to: options.to }
  const storage = await openStorage(loadConfig())
  try {
    const pool = storage.database.pool
    const hint = ' in the window (is the projector running?)'
    switch (report) {
      case 'failures': {
        const filters = { ...window, step, kind, errorCode: options.errorCode, tenantId: options.tenant }
        console.log(formatRows(await failuresByStep(pool, filters, now), FAILURE_COLUMNS, options.format, `no failures${hint}`))
        break
      }
      case 'models':
        console.log(formatRows(await modelInvocationStats(pool, { ...window, tenantId: options.tenant }, now), MODEL_COLUMNS, options.format, `no model calls${hint}`))
        break
      case 'costs':
        console.log(formatRows(await costPerTenantPerDay(pool, { ...window, tenantId: options.tenant }, now), COST_COLUMNS, options.format, `no model costs${hint}`))
        break
      case 'tools':
        console.log(formatRows(await toolUsage(pool, { ...window, tenantId: options.tenant }, now), TOOL_COLUMNS, options.format, `no tool calls${hint}`))
        break
    }
  } finally {
    await storage.close()
  }
}
