import { listDeadLetters, type DeadLetter } from '../../projections/projectionDeadLetters'
import { defaultProjections } from '../../projections/defaultProjections'
import { retryDeadLetters, UnknownProjectionError, type DeadLetterRetry } from '../../projections/retryProjectionDeadLetters'
import { authorizeCaller } from '../runtime/callerPermission'
import { loadConfig } from '../runtime/config'
import { formatRows, type OutputColumn, type OutputFormat } from '../runtime/output'
import { openStorage } from '../runtime/storage'

const LETTER_COLUMNS: readonly OutputColumn<DeadLetter>[] = [
  { key: 'projection', header: 'projection' },
  { key: 'position', header: 'position' },
  { key: 'eventType', header: 'event type' },
  { key: 'streamName', header: 'stream' },
  { key: 'failedAt', header: 'failed at' },
  { key: 'attempts', header: 'attempts' },
  { key: 'error', header: 'error' },
]

const RETRY_COLUMNS: readonly OutputColumn<DeadLetterRetry>[] = [
  { key: 'projection', header: 'projection' },
  { key: 'position', header: 'position' },
  { key: 'eventType', header: 'event type' },
  { key: 'outcome', header: 'outcome' },
  { key: 'method', header: 'how' },
  { key: 'attempts', header: 'attempts' },
  { key: 'error', header: 'error' },
]

function knownProjection(name: string | undefined): string | undefined {
  const known = defaultProjections().map((projection) => projection.name)
  if (name !== undefined && !known.includes(name)) throw new UnknownProjectionError(name, known)
  return name
}

/** `annalist dead-letters list`: the events projections could not handle, with position and error. */
export async function listProjectionDeadLettersCommand(options: { projection?: string; format: OutputFormat }): Promise<void> {
  const projection = knownProjection(options.projection)
  const storage = await openStorage(loadConfig())
  try {
    const letters = await listDeadLetters(storage.database.pool, projection)
    console.log(formatRows(letters, LETTER_COLUMNS, options.format, `no dead letters${projection ? ` for ${projection}` : ''}`))
  } finally {
    await storage.close()
  }
}

/**
 * `annalist dead-letters retry`: applies dead-lettered events again (after their cause was fixed) and prints what
 * happened to each. Exits 2 when any letter failed again.
 */
export async function retryProjectionDeadLettersCommand(options: { projection?: string; position?: string; all?: boolean; format: OutputFormat }): Promise<void> {
  if ((options.position === undefined) === (options.all !== true)) throw new RangeError('dead-letters retry needs exactly one of --position N and --all')
  if (options.position !== undefined && !/^[1-9]\d{0,18}$/.test(options.position)) {
    throw new RangeError(`--position must be a global position (a whole number >= 1), got ${JSON.stringify(options.position.slice(0, 40))}`)
  }
  const projection = knownProjection(options.projection)
  const position = options.position === undefined ? undefined : BigInt(options.position)
  const config = loadConfig()
  const storage = await openStorage(config)
  try {
    await authorizeCaller(storage.database.pool, config.apiKey, 'projectionDeadLetter.retry', null)
    const retries = await retryDeadLetters(storage.store, storage.database.pool, defaultProjections(), { projection, position })
    const what = position === undefined ? 'no dead letters' : `no dead letter at position ${position}`
    console.log(formatRows(retries, RETRY_COLUMNS, options.format, `${what}${projection ? ` for ${projection}` : ''}`))
    if (retries.some((retry) => retry.outcome === 'failed')) process.exitCode = 2
  } finally {
    await storage.close()
  }
}
