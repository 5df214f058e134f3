import { Client, Connection } from '@temporalio/client'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { createApiKey, listApiKeys } from '../../api/keys'
import { generateIntegrityKey } from '../../historian/integrity/tenantKeyRing'
import { pipelineWorkflowId } from '../../workflows/api'
import { freshPostgresDatabase } from '../support/databases'
import { uniqueSuffix } from '../support/pipelineHarness'
import { runAnnalist, type CliRun } from '../support/runCli'

const HINT = '  (run with --verbose for details)'

/** The state-changing commands check ANNALIST_API_KEY against the role model (docs/roles.md), through the built CLI. */
describe('roles in the CLI', () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>
  const taskQueue = `cli-roles-${uniqueSuffix()}`
  const integrityKey = generateIntegrityKey()
  const as = (key: string | undefined, args: readonly string[]): Promise<CliRun> =>
    runAnnalist(args, {
      DATABASE_URL: database.url,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      ANNALIST_TASK_QUEUE: taskQueue,
      ANNALIST_INTEGRITY_KEY: integrityKey,
      ...(key === undefined ? {} : { ANNALIST_API_KEY: key }),
    })
  const created = (run: CliRun) => {
    expect(run.code, run.stderr).toBe(0)
    return { key: run.stdout.trim(), id: /ID ([0-9a-f-]{36})/.exec(run.stderr)![1]! }
  }
  /** The one line a refused command prints, after checking it exited 1 and printed nothing else. */
  const refusal = (run: CliRun) => {
    expect(run.code, run.stderr).toBe(1)
    expect(run.stdout).toBe('')
    const lines = run.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    return lines[0]!
  }

  beforeAll(async () => {
    database = await freshPostgresDatabase()
  })
  afterAll(async () => {
    await database?.close()
  })

  it('bootstraps the first global operator key without a key, then needs key.create on the new key\'s tenant', async () => {
    expect(refusal(await as(undefined, ['api-keys', 'create', '--tenant', 'acme']))).toBe(
      `annalist: ANNALIST_API_KEY: not set; this command needs an API key with the permission key.create (docs/roles.md)${HINT}`,
    )
    const root = created(await as(undefined, ['api-keys', 'create', '--operator', '--label', 'root']))
    expect(refusal(await as(undefined, ['api-keys', 'create', '--operator']))).toMatch(/^annalist: ANNALIST_API_KEY: not set;/)

    const acmeOperator = created(await as(root.key, ['api-keys', 'create', '--operator', '--tenant', 'acme']))
    const approver = created(await as(acmeOperator.key, ['api-keys', 'create', '--tenant', 'acme', '--can-approve']))
    const [otherTenant, noTenant, analyst, global] = await Promise.all([
      as(acmeOperator.key, ['api-keys', 'create', '--tenant', 'globex']),
      as(acmeOperator.key, ['api-keys', 'create', '--tenant', 'no_such_tenant']),
      as(acmeOperator.key, ['api-keys', 'create', '--analyst']),
      as(approver.key, ['api-keys', 'create', '--tenant', 'acme']),
    ])
    const scope = `API key ${acmeOperator.id} (operator of tenant acme)`
    expect(refusal(otherTenant)).toBe(`annalist: ${scope} may not key.create for tenant "globex"${HINT}`)
    expect(refusal(noTenant)).toBe(refusal(otherTenant).replace('globex', 'no_such_tenant'))
    expect(refusal(analyst)).toBe(`annalist: ${scope} may not key.create${HINT}`)
    expect(refusal(global)).toBe(`annalist: API key ${approver.id} (tenant acme, may approve) may not key.create for tenant "acme"${HINT}`)

    const keys = await listApiKeys(database.pool)
    expect(keys.map((key) => [key.role, key.tenantId, key.canApprove])).toEqual([
      ['operator', null, false],
      ['operator', 'acme', false],
      ['tenant', 'acme', true],
    ])

    // Revoking: a scoped operator is refused alike for another tenant's key and for a key that does not exist.
    const globex = created(await as(root.key, ['api-keys', 'create', '--tenant', 'globex']))
    const [foreign, unknown, garbage] = await Promise.all([
      as(acmeOperator.key, ['api-keys', 'revoke', globex.id]),
      as(acmeOperator.key, ['api-keys', 'revoke', '00000000-0000-4000-8000-000000000000']),
      as(acmeOperator.key, ['api-keys', 'revoke', 'nonsense']),
    ])
    expect(refusal(foreign)).toBe(`annalist: ${scope} may not key.revoke${HINT}`)
    expect(refusal(unknown)).toBe(refusal(foreign))
    expect(refusal(garbage)).toBe(refusal(foreign))
    const own = await as(acmeOperator.key, ['api-keys', 'revoke', approver.id])
    expect(own.code, own.stderr).toBe(0)
    expect(refusal(await as(approver.key, ['api-keys', 'revoke', approver.id]))).toBe(
      `annalist: ANNALIST_API_KEY: not a valid API key (malformed, unknown or revoked)${HINT}`,
    )
    expect((await listApiKeys(database.pool)).filter((key) => key.revokedAt !== null).map((key) => key.keyId)).toEqual([approver.id])
  })

  it('start, cancel, redrive and replay need their permission on the tenant; a tenant key starts its own tasks', async () => {
    const tenant = await createApiKey(database.pool, { role: 'tenant', tenantId: 'acme' })
    const analyst = await createApiKey(database.pool, { role: 'analyst' })
    const acmeOperator = await createApiKey(database.pool, { role: 'operator', tenantId: 'acme' })
    const start = (tenantId: string, taskId: string) => ['start', '--tenant', tenantId, '--task', taskId, '--input', 'hello']
    const redrive = (tenantId: string) => ['redrive', '--tenant', tenantId, '--task', 'task-1', '--by', 'alice']
    const replay = (tenantId: string) => ['replay', '--tenant', tenantId, '--task', 'task-1', '--from', 'synthesize']
    const cancel = (tenantId: string) => ['cancel', '--tenant', tenantId, '--task', 'never-started', '--by', 'alice', '--reason', 'test']
    const runs = await Promise.all([
      as(undefined, start('acme', 'refused')),
      as(tenant.key, start('globex', 'refused')),
      as(analyst.key, start('acme', 'refused')),
      as(tenant.key, redrive('acme')),
      as(acmeOperator.key, redrive('globex')),
      as(acmeOperator.key, redrive('no_such_tenant')),
      as(tenant.key, replay('acme')),
      as(analyst.key, replay('globex')),
      as(tenant.key, cancel('acme')),
      as(acmeOperator.key, cancel('globex')),
    ])
    expect(runs.map(refusal)).toEqual([
      `annalist: ANNALIST_API_KEY: not set; this command needs an API key with the permission task.start (docs/roles.md)${HINT}`,
      `annalist: API key ${tenant.id} (tenant acme) may not task.start for tenant "globex"${HINT}`,
      `annalist: API key ${analyst.id} (analyst) may not task.start for tenant "acme"${HINT}`,
      `annalist: API key ${tenant.id} (tenant acme) may not task.redrive for tenant "acme"${HINT}`,
      `annalist: API key ${acmeOperator.id} (operator of tenant acme) may not task.redrive for tenant "globex"${HINT}`,
      `annalist: API key ${acmeOperator.id} (operator of tenant acme) may not task.redrive for tenant "no_such_tenant"${HINT}`,
      `annalist: API key ${tenant.id} (tenant acme) may not task.replay for tenant "acme"${HINT}`,
      `annalist: API key ${analyst.id} (analyst) may not task.replay for tenant "globex"${HINT}`,
      `annalist: API key ${tenant.id} (tenant acme) may not task.cancel for tenant "acme"${HINT}`,
      `annalist: API key ${acmeOperator.id} (operator of tenant acme) may not task.cancel for tenant "globex"${HINT}`,
    ])
    // Allowed: the operator's cancel reaches Temporal, which has no pipeline of that task to cancel.
    expect(refusal(await as(acmeOperator.key, cancel('acme')))).toBe(`annalist: cannot cancel acme/never-started: no pipeline was ever started for it${HINT}`)
    for (const run of runs) expect(run.stderr).not.toMatch(new RegExp(`${tenant.key}|${analyst.key}|${acmeOperator.key}`))

    const connection = await Connection.connect({ address: inject('temporalAddress') })
    try {
      const client = new Client({ connection })
      const refusedRuns = []
      for await (const info of client.workflow.list({ query: `WorkflowId = '${pipelineWorkflowId('acme', 'refused')}' OR WorkflowId = '${pipelineWorkflowId('globex', 'refused')}'` })) refusedRuns.push(info)
      expect(refusedRuns).toEqual([])

      // Allowed: a tenant key starts a task of its own tenant (no worker listens on this queue; the run is then ended).
      const taskId = `own-${uniqueSuffix()}`
      const started = await as(tenant.key, start('acme', taskId))
      expect(started.code, started.stderr).toBe(0)
      expect(started.stdout).toMatch(new RegExp(`^pipeline ${pipelineWorkflowId('acme', taskId)} run \\S+$`, 'm'))
      await client.workflow.getHandle(pipelineWorkflowId('acme', taskId)).terminate('test: started only to check the permission')
    } finally {
      await connection.close()
    }
  })
})
