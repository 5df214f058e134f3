import { Connection, isGrpcServiceError } from '@temporalio/client'
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common'
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes.js'

import { SEARCH_ATTRIBUTES } from '../../workflows/api'
import { freeLoopbackPorts, LOOPBACK, ServerStartError, startOnFreePorts, startServerProcess } from './serverProcess'
import {
  TEMPORAL_CLI_VERSION,
  TemporalBinaryUnavailableError,
  buildTemporalBinary,
  findGo,
  findTemporalBinary,
} from './temporalBinary'

/** A Temporal frontend Annalist can use, and how to release it. */
export interface TemporalEndpoint {
  readonly address: string
  readonly namespace: string
  /** `address`: TEMPORAL_ADDRESS; `binary`: a dev server we spawned; `sdk-download`: the SDK's own downloaded dev server. */
  readonly source: 'address' | 'binary' | 'sdk-download'
  /** Stops the server if we started it (a no-op for TEMPORAL_ADDRESS). Safe to call twice. */
  stop(): Promise<void>
}

/** A dev server we spawned from a temporal binary. */
export interface DevServerEndpoint extends TemporalEndpoint {
  readonly source: 'binary'
  readonly pid: number
  readonly port: number
  readonly logFile: string
  readonly dbFilename?: string
}

export interface StartDevServerOptions {
  readonly binaryPath: string
  /** SQLite file that persists the server's state across restarts; in-memory when omitted. */
  readonly dbFilename?: string
  /** Frontend gRPC port; a free one when omitted. Pass the old port to restart a server at the same address. */
  readonly port?: number
  /** Server output is appended here; a temporary file when omitted. */
  readonly logFile?: string
  /** Created at start (besides `default`, which always exists). */
  readonly namespace?: string
  /** How long to wait for the frontend to answer. */
  readonly startTimeoutMs?: number
  /** After SIGTERM, how long stop() waits before SIGKILL. */
  readonly stopGraceMs?: number
}

export interface ResolveTemporalOptions {
  readonly env?: NodeJS.ProcessEnv
  /** Persist a locally started server's state in this SQLite file. */
  readonly dbFilename?: string
  /** Build the temporal CLI with Go when no binary is found. */
  readonly allowBuild?: boolean
  /** Human-readable progress: which server is used, build output lines. */
  readonly onProgress?: (msg: string) => void
}

/** Thrown when a spawned temporal dev server exits or does not answer in time; the message ends with its last log lines. */
export class TemporalDevServerError extends ServerStartError {
  constructor(message: string, logFile: string, logTail: readonly string[]) {
    super(message, logFile, logTail)
    this.name = 'TemporalDevServerError'
  }
}

/** Thrown when the Temporal cluster named by TEMPORAL_ADDRESS cannot be reached or its search attributes cannot be set up. */
export class TemporalConnectionError extends Error {
  constructor(
    readonly address: string,
    readonly namespace: string,
    readonly reason: string,
  ) {
    super(`cannot use Temporal at TEMPORAL_ADDRESS=${address} (namespace ${namespace}): ${reason}`)
    this.name = 'TemporalConnectionError'
  }
}

/** Thrown when a search attribute Annalist needs exists on the namespace with another type. */
export class SearchAttributeTypeError extends Error {
  constructor(
    readonly namespace: string,
    readonly attribute: string,
    readonly actualType: string,
  ) {
    super(`search attribute ${attribute} on namespace ${namespace} is ${actualType}, Annalist needs Keyword`)
    this.name = 'SearchAttributeTypeError'
  }
}

const DEFAULT_NAMESPACE = 'default'
const DEFAULT_START_TIMEOUT_MS = 30_000
const DEFAULT_STOP_GRACE_MS = 10_000
const READY_POLL_MS = 250

const REQUIRED_SEARCH_ATTRIBUTES = [SEARCH_ATTRIBUTES.tenantId, SEARCH_ATTRIBUTES.taskId] as const

/**
 * Creates the Keyword search attributes Annalist needs (TenantId, TaskId) on a namespace, if missing. Idempotent, and
 * safe to race with another caller doing the same. Returns once the server lists them.
 */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<void> {
  const keyword = keywordIndexedValueType()
  const missing = async (): Promise<string[]> => {
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace })
    const absent: string[] = []
    for (const name of REQUIRED_SEARCH_ATTRIBUTES) {
      const type: number | undefined = customAttributes[name]
      if (type === undefined) absent.push(name)
      else if (type !== keyword) throw new SearchAttributeTypeError(namespace, name, indexedValueTypeName(type))
    }
    return absent
  }
  const absent = await missing()
  if (absent.length === 0) return
  try {
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(absent.map((name) => [name, keyword])),
    })
  } catch (error) {
    // ALREADY_EXISTS: another caller added them first.
    if (!(isGrpcServiceError(error) && error.code === 6)) throw error
  }
  const deadline = Date.now() + 10_000
  while ((await missing()).length > 0) {
    if (Date.now() > deadline) throw new Error(`search attributes ${absent.join(', ')} not visible on ${namespace} after adding them`)
    await delay(200)
  }
}

function keywordIndexedValueType(): number {
  const keyword = encodeSearchAttributeIndexedValueType(SearchAttributeType.KEYWORD)
  if (keyword === undefined) throw new Error('@temporalio/common has no indexed value type for KEYWORD')
  return keyword
}

function indexedValueTypeName(type: number): string {
  const names = Object.values(SearchAttributeType)
  return names.find((name) => encodeSearchAttributeIndexedValueType(name) === type) ?? `type ${type}`
}

/**
 * Dynamic config of every dev server Annalist starts. The history service's timer queue may fire a timer up to
 * `timerProcessorMaxTimeShift` (default 1 s) late; recovery after a worker crash waits on two timers (the heartbeat
 * timeout, then the retry backoff), so the default added about 2 s to every recovery (docs/benchmarks.md). A real
 * cluster keeps its own setting (the recovery section of docs/benchmarks.md).
 */
const DEV_SERVER_DYNAMIC_CONFIG: readonly string[] = ['--dynamic-config-value', 'history.timerProcessorMaxTimeShift="10ms"']

/**
 * Spawns `temporal server start-dev` on 127.0.0.1 with free ports (frontend, HTTP, metrics; UI off), the TenantId and
 * TaskId search attributes, and `dbFilename` when given, and waits until its frontend answers. The server runs in its
 * own process group, so a Ctrl-C in the terminal does not reach it directly; it is stopped by stop(), when this
 * process exits, or on SIGINT/SIGTERM/SIGHUP when the application installed no handler of its own.
 */
export async function startDevServer(options: StartDevServerOptions): Promise<DevServerEndpoint> {
  return startOnFreePorts(() => spawnDevServer(options), { portFixed: options.port !== undefined })
}

async function spawnDevServer(options: StartDevServerOptions): Promise<DevServerEndpoint> {
  const namespace = options.namespace ?? DEFAULT_NAMESPACE
  const [port, httpPort, metricsPort] = await freePorts(options.port)
  const address = `${LOOPBACK}:${port}`
  const args = [
    'server',
    'start-dev',
    '--headless',
    '--ip',
    LOOPBACK,
    '--port',
    String(port),
    '--http-port',
    String(httpPort),
    '--metrics-port',
    String(metricsPort),
    '--log-level',
    'warn',
    '--color',
    'never',
    ...REQUIRED_SEARCH_ATTRIBUTES.flatMap((name) => ['--search-attribute', `${name}=Keyword`]),
    ...(namespace === DEFAULT_NAMESPACE ? [] : ['--namespace', namespace]),
    ...(options.dbFilename === undefined ? [] : ['--db-filename', options.dbFilename]),
    ...DEV_SERVER_DYNAMIC_CONFIG,
  ]
  const server = await startServerProcess<true>({
    name: 'temporal dev server',
    where: `at ${address}`,
    command: options.binaryPath,
    args,
    env: withoutTemporalClientVariables(process.env),
    ...(options.logFile === undefined ? {} : { logFile: options.logFile }),
    tempLogPrefix: 'annalist-temporal-',
    startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
    stopGraceMs: options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
    pollMs: READY_POLL_MS,
    ready: async () => {
      const answer = await probe(address, namespace)
      return answer === true ? { ready: true } : { notYet: answer }
    },
    error: (message, logFile, logTail) => new TemporalDevServerError(message, logFile, logTail),
  })
  return {
    address,
    namespace,
    source: 'binary',
    pid: server.pid,
    port,
    logFile: server.logFile,
    ...(options.dbFilename === undefined ? {} : { dbFilename: options.dbFilename }),
    stop: server.stop,
  }
}

/** One readiness check: the frontend answers describeNamespace and lists our search attributes. */
async function probe(address: string, namespace: string): Promise<true | string> {
  let connection: Connection | undefined
  try {
    connection = await Connection.connect({ address, connectTimeout: 2_000 })
    const ready = connection
    await ready.withDeadline(Date.now() + 5_000, async () => {
      await ready.workflowService.describeNamespace({ namespace })
      await ensureSearchAttributes(ready, namespace)
    })
    return true
  } catch (error) {
    return oneLine(error)
  } finally {
    await connection?.close().catch(() => undefined)
  }
}

/**
 * Finds a Temporal server: the cluster at TEMPORAL_ADDRESS (namespace TEMPORAL_NAMESPACE, default `default`) with the
 * search attributes ensured; else a dev server from a local temporal binary (built with Go first when `allowBuild`);
 * else the dev server the SDK downloads (needs internet). Throws a one-line error saying how to get a binary when all fail.
 */
export async function resolveTemporal(options: ResolveTemporalOptions = {}): Promise<TemporalEndpoint> {
  const env = options.env ?? process.env
  const progress = options.onProgress ?? (() => undefined)
  const namespace = env.TEMPORAL_NAMESPACE?.trim() || DEFAULT_NAMESPACE
  const address = env.TEMPORAL_ADDRESS?.trim()
  if (address) {
    progress(`using Temporal at ${address} (namespace ${namespace})`)
    await prepareExistingCluster(address, namespace)
    return { address, namespace, source: 'address', stop: async () => undefined }
  }

  let binaryPath = findTemporalBinary(env)
  const failures: string[] = []
  if (!binaryPath && options.allowBuild && findGo(env)) {
    progress(`no temporal binary found: building temporal CLI v${TEMPORAL_CLI_VERSION} with go install (once, a few minutes)`)
    try {
      binaryPath = await buildTemporalBinary({ env, onProgress: progress })
    } catch (error) {
      failures.push(oneLine(error))
    }
  }
  if (binaryPath) {
    progress(`starting Temporal dev server from ${binaryPath}`)
    return startDevServer({ binaryPath, namespace, ...(options.dbFilename === undefined ? {} : { dbFilename: options.dbFilename }) })
  }

  progress('no temporal binary found: trying the dev server download of @temporalio/testing')
  try {
    const { TestWorkflowEnvironment } = await import('@temporalio/testing')
    const testEnv = await TestWorkflowEnvironment.createLocal({
      server: {
        namespace,
        searchAttributes: REQUIRED_SEARCH_ATTRIBUTES.map((name) => defineSearchAttributeKey(name, SearchAttributeType.KEYWORD)),
        ...(options.dbFilename === undefined ? {} : { dbFilename: options.dbFilename }),
        extraArgs: [...DEV_SERVER_DYNAMIC_CONFIG],
      },
    })
    return { address: testEnv.address, namespace, source: 'sdk-download', stop: () => testEnv.teardown() }
  } catch (error) {
    failures.push(`SDK download failed: ${truncate(oneLine(error), 200)}`)
  }
  throw new TemporalBinaryUnavailableError(failures.join('; '))
}

async function prepareExistingCluster(address: string, namespace: string): Promise<void> {
  let connection: Connection | undefined
  try {
    connection = await Connection.connect({ address, connectTimeout: 10_000 })
    const connected = connection
    await connected.withDeadline(Date.now() + 30_000, () => ensureSearchAttributes(connected, namespace))
  } catch (error) {
    if (error instanceof SearchAttributeTypeError) throw error
    throw new TemporalConnectionError(address, namespace, oneLine(error))
  } finally {
    await connection?.close().catch(() => undefined)
  }
}

/** Three free TCP ports on the loopback interface, held open together so they are distinct; `first` replaces the first. */
async function freePorts(first?: number): Promise<[number, number, number]> {
  const ports = await freeLoopbackPorts(first === undefined ? 3 : 2)
  const [a = 0, b = 0, c = 0] = first === undefined ? ports : [first, ...ports]
  return [a, b, c]
}

/** The temporal CLI reads TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, ... as client settings; the server we start must not. */
function withoutTemporalClientVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([key]) => !key.startsWith('TEMPORAL_')))
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  return message.replace(/\s+/g, ' ').trim()
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}
