import type { TestProject } from 'vitest/node'
import pg from 'pg'
import type {} from 'vitest'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the real PostgreSQL server the tests create their databases on. */
    postgresAdminUrl: string
    /** Address of the Temporal server the tests use. */
    temporalAddress: string
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

export default async function setup(project: TestProject) {
  const postgresAdminUrl = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? DEFAULT_LOCAL_POSTGRES
  await checkPostgres(postgresAdminUrl)
  project.provide('postgresAdminUrl', postgresAdminUrl)
  project.provide('temporalAddress', process.env.TEMPORAL_ADDRESS ?? '')
  return async () => {}
}
