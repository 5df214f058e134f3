import { randomUUID } from 'node:crypto'
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

import { Client, Connection } from '@temporalio/client'
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common'
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes.js'
import { msToTs } from '@temporalio/common/lib/time'
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest'

import { isProcessAlive } from '../../cli/runtime/fileLock'
import {
  TemporalBinaryUnavailableError,
  TemporalBuildError,
  TemporalCliPathError,
  buildTemporalBinary,
  cachedTemporalBinaryPath,
  ensureTemporalBinary,
  findTemporalBinary,
} from '../../cli/runtime/temporalBinary'
import {
  SearchAttributeTypeError,
  TemporalConnectionError,
  TemporalDevServerError,
  ensureSearchAttributes,
  resolveTemporal,
  startDevServer,
  type TemporalEndpoint,
} from '../../cli/runtime/temporalServer'
import { SEARCH_ATTRIBUTES } from '../../workflows/api'
import { scratchDirs } from '../support/scratchDirs'

const TENANT_ID = defineSearchAttributeKey(SEARCH_ATTRIBUTES.tenantId, SearchAttributeType.KEYWORD)
const TASK_ID = defineSearchAttributeKey(SEARCH_ATTRIBUTES.taskId, SearchAttributeType.KEYWORD)
const KEYWORD = encodeSearchAttributeIndexedValueType(SearchAttributeType.KEYWORD)
const HOW_TO_GET_A_BINARY =
  'no temporal binary: install Go and run `npm run setup:temporal`, set TEMPORAL_CLI_PATH, or set TEMPORAL_ADDRESS'

const scratchDir = scratchDirs('annalist-temporal-test-')

async function writeExecutable(path: string, script: string): Promise<string> {
  await writeFile(path, script)
  await chmod(path, 0o755)
  return path
}

/** The real temporal binary (global setup already found or built it, unless TEMPORAL_ADDRESS is set). */
function temporalBinary(): Promise<string> {
  return ensureTemporalBinary({ allowBuild: true })
}

describe('startDevServer', () => {
  it('serves the search attributes and keeps a started workflow across a restart on the same db file', async () => {
    const binaryPath = await temporalBinary()
    const dbFilename = join(await scratchDir(), 'temporal.db')
    const workflowId = `unserved-${randomUUID()}`
    const tenantId = `tenant_${randomUUID().slice(0, 8)}`
    let server = await startDevServer({ binaryPath, dbFilename })
    let connection: Connection | undefined
    try {
      expect(server.source).toBe('binary')
      expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/)
      connection = await Connection.connect({ address: server.address })
      const namespace = await connection.workflowService.describeNamespace({ namespace: 'default' })
      expect(namespace.namespaceInfo?.name).toBe('default')
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' })
      expect(customAttributes[SEARCH_ATTRIBUTES.tenantId]).toBe(KEYWORD)
      expect(customAttributes[SEARCH_ATTRIBUTES.taskId]).toBe(KEYWORD)

      // No worker serves this type: the execution just stays RUNNING in the server's database.
      const started = await new Client({ connection }).workflow.start('annalistUnservedWorkflow', {
        workflowId,
        taskQueue: `unserved-${randomUUID()}`,
        typedSearchAttributes: [
          { key: TENANT_ID, value: tenantId },
          { key: TASK_ID, value: 'task_1' },
        ],
      })
      await connection.close()
      connection = undefined
      const firstPid = server.pid
      await server.stop()
      expect(isProcessAlive(firstPid)).toBe(false)

      server = await startDevServer({ binaryPath, dbFilename })
      connection = await Connection.connect({ address: server.address })
      const description = await new Client({ connection }).workflow.getHandle(workflowId).describe()
      expect(description.status.name).toBe('RUNNING')
      expect(description.runId).toBe(started.firstExecutionRunId)
      expect(description.type).toBe('annalistUnservedWorkflow')
      expect(description.typedSearchAttributes.get(TENANT_ID)).toBe(tenantId)
      expect(description.typedSearchAttributes.get(TASK_ID)).toBe('task_1')
    } finally {
      await connection?.close()
      await server.stop()
    }
  })

  it('restarts at the same address when given the old port', async () => {
    const binaryPath = await temporalBinary()
    const first = await startDevServer({ binaryPath })
    await first.stop()
    const second = await startDevServer({ binaryPath, port: first.port })
    try {
      expect(second.address).toBe(first.address)
      const connection = await Connection.connect({ address: second.address })
      await connection.workflowService.getSystemInfo({})
      await connection.close()
    } finally {
      await second.stop()
    }
  })

  it('fails with the tail of the server log when the server cannot start', async () => {
    const binaryPath = await temporalBinary()
    const dir = await scratchDir()
    const logFile = join(dir, 'server.log')
    const start = startDevServer({ binaryPath, dbFilename: join(dir, 'missing-dir', 'temporal.db'), logFile })
    const error = await start.then(
      () => undefined,
      (rejection: unknown) => rejection,
    )
    expect(error).toBeInstanceOf(TemporalDevServerError)
    const failure = error as TemporalDevServerError
    expect(failure.message).toMatch(/exited during start/)
    expect(failure.message).toContain(logFile)
    expect(failure.logTail.length).toBeGreaterThan(0)
    expect(failure.message).toContain(failure.logTail.at(-1))
  })
})

describe('ensureSearchAttributes', () => {
  let server: TemporalEndpoint
  let connection: Connection

  beforeAll(async () => {
    server = await startDevServer({ binaryPath: await temporalBinary() })
    connection = await Connection.connect({ address: server.address })
  })
  afterAll(async () => {
    await connection?.close()
    await server?.stop()
  })

  async function freshNamespace(): Promise<string> {
    const namespace = `annalist-test-${randomUUID().slice(0, 8)}`
    await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') })
    return namespace
  }

  it('adds TenantId and TaskId as Keyword to a namespace that lacks them, and a second call changes nothing', async () => {
    const namespace = await freshNamespace()
    const before = await connection.operatorService.listSearchAttributes({ namespace })
    expect(before.customAttributes[SEARCH_ATTRIBUTES.tenantId]).toBeUndefined()

    await ensureSearchAttributes(connection, namespace)
    await ensureSearchAttributes(connection, namespace)

    const after = await connection.operatorService.listSearchAttributes({ namespace })
    expect(after.customAttributes[SEARCH_ATTRIBUTES.tenantId]).toBe(KEYWORD)
    expect(after.customAttributes[SEARCH_ATTRIBUTES.taskId]).toBe(KEYWORD)
  })

  it('refuses a namespace where TenantId exists with another type', async () => {
    const namespace = await freshNamespace()
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: { [SEARCH_ATTRIBUTES.tenantId]: encodeSearchAttributeIndexedValueType(SearchAttributeType.TEXT)! },
    })
    await expect(ensureSearchAttributes(connection, namespace)).rejects.toThrow(SearchAttributeTypeError)
    await expect(ensureSearchAttributes(connection, namespace)).rejects.toThrow(/TenantId on namespace .* is TEXT/)
  })
})

describe('findTemporalBinary', () => {
  it('prefers TEMPORAL_CLI_PATH over the cache dir and PATH', async () => {
    const dir = await scratchDir()
    const configured = await writeExecutable(join(dir, 'my-temporal'), '#!/bin/sh\n')
    await mkdir(join(dir, 'cache', 'bin'), { recursive: true })
    await writeExecutable(cachedTemporalBinaryPath(join(dir, 'cache')), '#!/bin/sh\n')
    expect(findTemporalBinary({ TEMPORAL_CLI_PATH: configured, ANNALIST_CACHE_DIR: join(dir, 'cache'), PATH: dir })).toBe(
      configured,
    )
  })

  it('names TEMPORAL_CLI_PATH when it points at nothing or at a file that cannot run', async () => {
    const dir = await scratchDir()
    const missing = join(dir, 'no-such-temporal')
    expect(() => findTemporalBinary({ TEMPORAL_CLI_PATH: missing })).toThrow(TemporalCliPathError)
    expect(() => findTemporalBinary({ TEMPORAL_CLI_PATH: missing })).toThrow(`TEMPORAL_CLI_PATH=${missing} does not exist`)
    const plain = join(dir, 'plain-file')
    await writeFile(plain, 'not a program')
    expect(() => findTemporalBinary({ TEMPORAL_CLI_PATH: plain })).toThrow(`TEMPORAL_CLI_PATH=${plain} is not executable`)
    expect(() => findTemporalBinary({ TEMPORAL_CLI_PATH: dir })).toThrow(`TEMPORAL_CLI_PATH=${dir} is not a file`)
  })

  it('looks in the cache dir, then on PATH, and returns undefined when neither has one', async () => {
    const dir = await scratchDir()
    const cacheDir = join(dir, 'cache')
    const pathDir = join(dir, 'path-bin')
    await mkdir(join(cacheDir, 'bin'), { recursive: true })
    await mkdir(pathDir)
    const onPath = await writeExecutable(join(pathDir, 'temporal'), '#!/bin/sh\n')
    expect(findTemporalBinary({ ANNALIST_CACHE_DIR: cacheDir, PATH: pathDir })).toBe(onPath)
    const cached = await writeExecutable(cachedTemporalBinaryPath(cacheDir), '#!/bin/sh\n')
    expect(findTemporalBinary({ ANNALIST_CACHE_DIR: cacheDir, PATH: pathDir })).toBe(cached)
    expect(findTemporalBinary({ ANNALIST_CACHE_DIR: join(dir, 'empty'), PATH: join(dir, 'empty') })).toBeUndefined()
  })
})

describe('buildTemporalBinary', () => {
  /** A stand-in `go` on PATH: answers `go env -json` and runs `install` as the given shell snippet ($FAKE_GO_DIR is its scratch dir). */
  async function fakeGo(install: string): Promise<{ env: NodeJS.ProcessEnv; dir: string; cacheDir: string }> {
    const dir = await scratchDir()
    await mkdir(join(dir, 'bin'))
    await writeExecutable(
      join(dir, 'bin', 'go'),
      [
        '#!/bin/sh',
        `FAKE_GO_DIR='${dir}'`,
        `if [ "$1" = env ]; then echo '{"GOMODCACHE":"${dir}/mod","GOCACHE":"${dir}/build"}'; exit 0; fi`,
        `if [ "$1" = install ]; then ${install}; fi`,
        'exit 2',
      ].join('\n'),
    )
    return { env: { PATH: `${join(dir, 'bin')}:/usr/bin:/bin`, HOME: dir }, dir, cacheDir: join(dir, 'cache') }
  }

  it('fails with the one-line hint when go is not installed', async () => {
    const dir = await scratchDir()
    const build = buildTemporalBinary({ cacheDir: join(dir, 'cache'), env: { PATH: join(dir, 'nothing') } })
    await expect(build).rejects.toThrow(TemporalBinaryUnavailableError)
    await expect(build).rejects.toThrow(HOW_TO_GET_A_BINARY)
  })

  it('streams go output, reports the last stderr lines on failure, and leaves no binary or temp dir', async () => {
    const { env, cacheDir } = await fakeGo(
      'echo "go: downloading example.com/dep v1.2.3" >&2; echo "build failed: disk on fire" >&2; exit 1',
    )
    const lines: string[] = []
    const build = buildTemporalBinary({ cacheDir, env, onProgress: (line) => lines.push(line) })
    await expect(build).rejects.toThrow(TemporalBuildError)
    await expect(build).rejects.toThrow(/failed \(exit 1\): go: downloading example\.com\/dep v1\.2\.3 \| build failed: disk on fire$/)
    expect(lines).toEqual(['go: downloading example.com/dep v1.2.3', 'build failed: disk on fire'])
    expect(await readdir(join(cacheDir, 'bin'))).toEqual([])
  })

  it('builds once for concurrent callers, through a temporary GOBIN renamed into the cache', async () => {
    const { env, dir, cacheDir } = await fakeGo(
      [
        'echo "$GOBIN $GOMODCACHE $*" >> "$FAKE_GO_DIR/installs.log"',
        // Slow enough that the second caller finds the lock taken.
        'sleep 1',
        'printf "#!/bin/sh\\necho fake temporal\\n" > "$GOBIN/temporal"',
        'chmod +x "$GOBIN/temporal"',
        'exit 0',
      ].join('; '),
    )
    const progress: string[] = []
    const onProgress = (line: string) => progress.push(line)
    const [first, second] = await Promise.all([
      buildTemporalBinary({ cacheDir, env, onProgress }),
      buildTemporalBinary({ cacheDir, env, onProgress }),
    ])
    expect(first).toBe(cachedTemporalBinaryPath(cacheDir))
    expect(second).toBe(first)
    const installs = (await readFile(join(dir, 'installs.log'), 'utf8')).trim().split('\n')
    expect(installs).toHaveLength(1)
    const [gobin, gomodcache, ...args] = installs[0]!.split(' ')
    expect(gobin).toMatch(new RegExp(`^${join(cacheDir, 'bin')}/\\.build-\\d+-`))
    expect(gomodcache).toBe(join(dir, 'mod'))
    expect(args.at(-1)).toBe('github.com/temporalio/cli/cmd/temporal@v1.5.1')
    expect(progress.filter((line) => line.includes('another temporal CLI build holds'))).toHaveLength(1)
    expect((await readdir(join(cacheDir, 'bin'))).sort()).toEqual(['temporal'])
    expect(findTemporalBinary({ ANNALIST_CACHE_DIR: cacheDir, PATH: '' })).toBe(first)
  })
})

describe('resolveTemporal', () => {
  const endpoints: TemporalEndpoint[] = []
  afterEach(async () => {
    await Promise.all(endpoints.splice(0).map((endpoint) => endpoint.stop()))
  })

  it('uses TEMPORAL_ADDRESS as it is, and its stop() leaves that server running', async () => {
    const address = inject('temporalAddress')
    const endpoint = await resolveTemporal({ env: { TEMPORAL_ADDRESS: address } })
    expect(endpoint).toMatchObject({ address, namespace: 'default', source: 'address' })
    await endpoint.stop()
    const connection = await Connection.connect({ address })
    try {
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' })
      expect(customAttributes[SEARCH_ATTRIBUTES.taskId]).toBe(KEYWORD)
    } finally {
      await connection.close()
    }
  })

  it('names TEMPORAL_ADDRESS when nothing answers there', async () => {
    const idle = await startDevServer({ binaryPath: await temporalBinary() })
    await idle.stop()
    const resolving = resolveTemporal({ env: { TEMPORAL_ADDRESS: idle.address } })
    await expect(resolving).rejects.toThrow(TemporalConnectionError)
    await expect(resolving).rejects.toThrow(`cannot use Temporal at TEMPORAL_ADDRESS=${idle.address}`)
  })

  it('starts a dev server from TEMPORAL_CLI_PATH when no address is set', async () => {
    const endpoint = await resolveTemporal({ env: { TEMPORAL_CLI_PATH: await temporalBinary(), PATH: '' } })
    endpoints.push(endpoint)
    expect(endpoint.source).toBe('binary')
    const connection = await Connection.connect({ address: endpoint.address })
    try {
      const info = await connection.workflowService.describeNamespace({ namespace: endpoint.namespace })
      expect(info.namespaceInfo?.name).toBe('default')
    } finally {
      await connection.close()
    }
  })

  it('without a binary or Go, falls back to the SDK download, or says in one line how to get a binary', async () => {
    const dir = await scratchDir()
    const outcome = await resolveTemporal({ env: { PATH: dir, HOME: dir, ANNALIST_CACHE_DIR: dir }, allowBuild: true }).then(
      (endpoint) => {
        endpoints.push(endpoint)
        return endpoint.source
      },
      (error: unknown) => error,
    )
    // Machines with internet get the SDK's download; offline ones (like CI) get the hint.
    if (outcome === 'sdk-download') return
    expect(outcome).toBeInstanceOf(TemporalBinaryUnavailableError)
    const message = (outcome as Error).message
    expect(message.startsWith(HOW_TO_GET_A_BINARY)).toBe(true)
    expect(message).toContain('SDK download failed')
    expect(message).not.toContain('\n')
  })
})
