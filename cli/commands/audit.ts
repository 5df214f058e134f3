import { assertTaskId, assertTenantId } from '../../historian/streams'
import { auditTrail, type AuditEntry } from '../../projections/auditTimeline/query'
import { loadConfig } from '../runtime/config'
import { openStorage } from '../runtime/storage'

function formatRow(entry: AuditEntry): string {
  const at = entry.occurredAt.toISOString().replace('T', ' ').slice(0, 23)
  return `${String(entry.position).padStart(7)}  ${at}  ${entry.taskId.padEnd(24)}  ${entry.eventType.padEnd(22)}  ${entry.summary}`
}

/** `annalist audit <tenant> [task]`: prints one tenant's audit timeline from the read model; never another tenant's. */
export async function auditCommand(tenant: string, task: string | undefined, options: { format: 'table' | 'json'; limit: string }): Promise<void> {
  const limit = Number(options.limit)
  if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new RangeError(`--limit must be a whole number from 1 to 100000, got ${options.limit}`)
  assertTenantId(tenant)
  if (task !== undefined) assertTaskId(task)
  const config = loadConfig()
  const storage = await openStorage(config)
  try {
    const entries = await auditTrail(storage.database.pool, { tenantId: tenant, taskId: task, limit })
    if (options.format === 'json') {
      console.log(JSON.stringify(entries, (_key, value) => (typeof value === 'bigint' ? value.toString() : value), 2))
      return
    }
    if (entries.length === 0) {
      console.log(`no audit entries for tenant ${tenant}${task ? ` task ${task}` : ''} (is the projector running?)`)
      return
    }
    console.log(`${'pos'.padStart(7)}  ${'occurred at (UTC)'.padEnd(23)}  ${'task'.padEnd(24)}  ${'event'.padEnd(22)}  summary`)
    for (const entry of entries) console.log(formatRow(entry))
  } finally {
    await storage.close()
  }
}
