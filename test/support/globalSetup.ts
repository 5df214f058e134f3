import type { TestProject } from 'vitest/node'
import pg from 'pg'
import type {} from 'vitest'

import { resolveTemporal, type TemporalEndpoint } from '../../cli/runtime/temporalServer'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the real PostgreSQL server the tests create their databases on. */
    postgresAdminUrl: string
    /** Address of the Temporal server the tests use. */
    temporalAddress: string
    /** Namespace on that Temporal server (TEMPORAL_NAMESPACE, default `default`). */
    temporalNamespace: string
  }
}

const DEFAULT_LOCAL_POSTGRES = 'postgres://postgres:postgres@127.0.0.1:5432/postgres'

async function checkPostgres(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  try {
    await client.connect()
    await client.query('select 1')
  } catch (error) {
    throw new Error(
      `tests need a real PostgreSQL server at ${url.replace(/:[^:@/]*@/, ':***@')} (${(error as Error).message}); ` +
        'run `bash .ci/run` to install and start one, or set TEST_DATABASE_URL',
    )
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** One Temporal server for the whole run: TEMPORAL_ADDRESS if set, else a dev server (built with Go on first use). */
async function startTemporal(): Promise<TemporalEndpoint> {
  const started = Date.now()
  const temporal = await resolveTemporal({
    allowBuild: true,
    onProgress: (msg) => process.stderr.write(`[temporal] ${msg}\n`),
  })
  process.stderr.write(
    `[temporal] ${temporal.source} server at ${temporal.address} ready in ${((Date.now() - started) / 1000).toFixed(1)}s\n`,
  )
  return temporal
}

export default async function setup(project: TestProject) {
  const postgresAdminUrl = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? DEFAULT_LOCAL_POSTGRES
  const [postgres, temporal] = await Promise.allSettled([checkPostgres(postgresAdminUrl), startTemporal()])
  if (postgres.status === 'rejected' || temporal.status === 'rejected') {
    if (temporal.status === 'fulfilled') await temporal.value.stop()
    throw postgres.status === 'rejected' ? postgres.reason : (temporal as PromiseRejectedResult).reason
  }
  project.provide('postgresAdminUrl', postgresAdminUrl)
  project.provide('temporalAddress', temporal.value.address)
  project.provide('temporalNamespace', temporal.value.namespace)
  return async () => {
    await temporal.value.stop()
  }
}
