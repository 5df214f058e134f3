import { assertTaskId, assertTenantId } from '../../historian/streams'
import { verifyChain, type ChainBreak, type ChainVerification } from '../../historian/integrity/verifyChain'
import { loadConfig, requireIntegrityKeyRing } from '../runtime/config'
import { startActivityIndicator } from '../runtime/progress'
import { openStorage } from '../runtime/storage'

/** The exit code of `annalist verify` when a chain is broken (1 stays for errors). */
export const TAMPERING_EXIT_CODE = 2

function describeBreak(broken: ChainBreak): string[] {
  const lines = [
    `  stream    ${broken.streamName}  (task ${broken.taskId})`,
    `  revision  ${broken.revision}   event ${broken.eventId} (${broken.eventType})   global position ${broken.position}`,
    `  problem   ${broken.kind}: ${broken.message}`,
  ]
  if (broken.expected !== null) lines.push(`  expected  ${broken.expected}`)
  if (broken.found !== null) lines.push(`  found     ${broken.found}`)
  return lines
}

function report(result: ChainVerification): string[] {
  const scope = result.taskId === null ? `tenant ${result.tenantId}` : `tenant ${result.tenantId} task ${result.taskId}`
  const counted = `${result.streamsChecked} stream${result.streamsChecked === 1 ? '' : 's'}, ${result.eventsChecked} events`
  const lines = result.intact
    ? [`${scope}: hash chains intact (${counted} verified)`]
    : [`${scope}: TAMPERING DETECTED in ${result.brokenStreams} of ${result.streamsChecked} streams (${result.eventsChecked} events checked)`, 'first broken link:']
  if (!result.intact) lines.push(...describeBreak(result.firstBreak!))
  const others = result.breaks.slice(1)
  if (others.length > 0) {
    lines.push(`other broken streams (first broken link of each)${result.brokenStreams > result.breaks.length ? `, ${result.breaks.length - 1} of ${result.brokenStreams - 1} listed` : ''}:`)
    for (const broken of others) lines.push(`  ${broken.streamName} revision ${broken.revision} (${broken.eventId}): ${broken.kind}`)
  }
  if (result.partialStreams.length > 0) {
    lines.push('verified from a later revision, because retention hides their first events:')
    for (const partial of result.partialStreams) lines.push(`  ${partial.streamName} from revision ${partial.firstRevision} (${partial.retention})`)
  }
  return lines
}

/**
 * `annalist verify --tenant T [--task K]`: walks the tenant's hash-chained task streams (or one task's) with that
 * tenant's key only and prints "intact" or the first broken link. Exits 0 when intact, 2 when tampering is found,
 * 1 on errors (including nothing to verify).
 */
export async function verifyCommand(options: { tenant: string; task?: string; format: 'table' | 'json' }): Promise<void> {
  assertTenantId(options.tenant)
  if (options.task !== undefined) assertTaskId(options.task)
  const config = loadConfig()
  const keyRing = requireIntegrityKeyRing(config)
  const storage = await openStorage(config)
  let result: ChainVerification
  try {
    const indicator = options.task === undefined ? startActivityIndicator({ label: `verifying tenant ${options.tenant}`, countLabel: 'streams' }) : undefined
    let streamsSeen = 0
    try {
      result = await verifyChain({
        store: storage.store,
        keyRing,
        tenantId: options.tenant,
        taskId: options.task,
        onProgress: (progress) => {
          while (streamsSeen < progress.streamsChecked) {
            streamsSeen++
            indicator?.tick()
          }
          indicator?.note(`${progress.eventsChecked} events checked`)
        },
      })
    } finally {
      indicator?.stop()
    }
  } finally {
    await storage.close()
  }
  if (result.eventsChecked === 0) {
    throw new Error(`nothing to verify: ${options.task === undefined ? `tenant ${options.tenant} has no events` : `task ${options.task} of tenant ${options.tenant} has no events`}`)
  }
  if (options.format === 'json') console.log(JSON.stringify(result, null, 2))
  else for (const line of report(result)) console.log(line)
  if (!result.intact) process.exitCode = TAMPERING_EXIT_CODE
}
