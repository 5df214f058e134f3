import { beforeAll, describe, expect, it } from 'vitest'
import { TaskEventFactory } from '../../dev/fixtures/eventFactory'
import { operatorKeyEnv } from '../support/operatorKey'
import { pgliteDataDir } from '../support/pgliteDataDir'
import { runAnnalist } from '../support/runCli'

/** `annalist lifecycle` as an operator runs it, on an embedded PGlite data directory. */
describe('annalist lifecycle on a PGlite data directory', () => {
  const { dataDir, key, withDataDir, historianOn } = pgliteDataDir('annalist-lifecycle-')
  let operator: { ANNALIST_API_KEY: string }
  const lifecycle = (args: string[], caller: object = operator) => runAnnalist(['lifecycle', ...args], { ANNALIST_DATA_DIR: dataDir, ANNALIST_INTEGRITY_KEY: key, ...caller })
  const who = ['--tenant', 'acme', '--by', 'dpo@example.test', '--reason', 'ticket C-42']

  beforeAll(async () => {
    await withDataDir(async (database) => {
      operator = await operatorKeyEnv(database.pool)
      const historian = historianOn(database)
      for (const taskId of ['task-a', 'task-b']) {
        const f = new TaskEventFactory('acme', taskId)
        await historian.appendToTask('acme', taskId, [f.received(), f.routingInvoked(), f.planCreated(['search']), f.toolExecuted('call-1', 'search')], { revision: 'no_stream' })
      }
    })
  })

  it('refuses to decide, heal or sweep without an operator key, and records nothing', async () => {
    for (const args of [['soft-delete', ...who, '--task', 'task-b'], ['sync'], ['sweep']]) {
      const refused = await lifecycle(args, {})
      expect(refused.code, args[0]).toBe(1)
      expect(refused.stderr.trim(), args[0]).toMatch(/^annalist: ANNALIST_API_KEY: not set; this command needs an API key with the permission (lifecycle\.decide|projection\.rebuild)/)
    }
    expect((await lifecycle(['list', '--tenant', 'acme', '--format', 'json'], {})).stdout.trim()).toBe('[]')
  })

  it('records a decision once, lists it, and checks the store against it', async () => {
    const first = await lifecycle(['truncate', ...who, '--task', 'task-a', '--before', '2'])
    expect(first.stderr).not.toMatch(/annalist:/)
    expect(first.code).toBe(0)
    expect(first.stdout).toMatch(/^recorded decision [0-9a-f-]{36}: truncate before revision 2 of acme\/task-a \(at revision 3\) by dpo@example.test\napplied to the store: tenant_acme-task-a\n$/)
    const again = await lifecycle(['truncate', ...who, '--task', 'task-a', '--before', '2'])
    expect(again.stdout).toMatch(/^already decided \(decision [0-9a-f-]{36} by dpo@example.test at .*\): truncate before revision 2 of acme\/task-a .*; nothing new recorded\n$/)

    const listed = await lifecycle(['list', '--tenant', 'acme', '--format', 'json'])
    expect(listed.code).toBe(0)
    expect(JSON.parse(listed.stdout)).toMatchObject([{ task: 'task-a', decision: 'truncate before revision 2', revision: 3, decidedBy: 'dpo@example.test', reason: 'ticket C-42' }])

    const check = await lifecycle(['check'])
    expect(check.code).toBe(0)
    expect(check.stdout.trim()).toBe('1 stream(s) compared, 0 healed, 0 differing from the recorded decisions')
  })

  it('exits 2 naming a stream_metadata row that no decision explains', async () => {
    await withDataDir(async (database) => {
      await database.pool.query(`insert into stream_metadata (stream_name, max_count) values ('tenant_acme-task-b', 1)`)
    })
    const check = await lifecycle(['check'])
    expect(check.code).toBe(2)
    expect(check.stdout).toContain('tenant_acme-task-b: the store has maxCount 1, the decisions no rules (no decision recorded for it)')
    await withDataDir(async (database) => {
      await database.pool.query(`delete from stream_metadata where stream_name = 'tenant_acme-task-b'`)
    })
  })

  it('refuses bad input with one line naming the problem, and records nothing', async () => {
    const noRule = await lifecycle(['retain', ...who, '--task', 'task-b'])
    expect(noRule.code).toBe(1)
    expect(noRule.stderr.trim()).toMatch(/^annalist: invalid --max-age: give --max-age SECONDS, --max-count N or both/)
    const lowered = await lifecycle(['truncate', ...who, '--task', 'task-a', '--before', '1'])
    expect(lowered.code).toBe(1)
    expect(lowered.stderr.trim()).toMatch(/^annalist: tenant_acme-task-a: truncate before 1 would show events below 2 again/)
    const badTime = await lifecycle(['sweep', '--at', 'tomorrow'])
    expect(badTime.stderr.trim()).toMatch(/^annalist: invalid --at: "tomorrow" is not an ISO 8601 time with a zone/)
    const listed = await lifecycle(['list', '--tenant', 'acme', '--format', 'json'])
    expect(JSON.parse(listed.stdout)).toHaveLength(1)
  })

  it('sweeps retention as of a given time', async () => {
    expect((await lifecycle(['retain', ...who, '--task', 'task-b', '--max-age', '60'])).code).toBe(0)
    const sweep = await lifecycle(['sweep', '--at', '2099-01-01T00:00:00Z'])
    expect(sweep.code).toBe(0)
    expect(sweep.stdout.trim()).toMatch(/^swept 1 stream\(s\) with decided retention as of 2099-01-01T00:00:00.000Z: audit_timeline at \d+, task_summary at \d+/)
  })
})
