import { beforeAll, describe, expect, it } from 'vitest'
import { generateIntegrityKey } from '../../historian/integrity/tenantKeyRing'
import type { ChainVerification } from '../../historian/integrity/verifyChain'
import { TaskEventFactory } from '../../dev/fixtures/eventFactory'
import { pgliteDataDir } from '../support/pgliteDataDir'
import { runAnnalist } from '../support/runCli'

/** `annalist verify` as an operator runs it: on the embedded PGlite data directory, after a process appended to it. */
describe('annalist verify on a PGlite data directory', () => {
  const { dataDir, key, withDataDir, historianOn } = pgliteDataDir('annalist-verify-')
  const verify = (args: string[], env: NodeJS.ProcessEnv = { ANNALIST_INTEGRITY_KEY: key }) => runAnnalist(['verify', ...args], { ANNALIST_DATA_DIR: dataDir, ...env })

  beforeAll(async () => {
    await withDataDir(async (database) => {
      const historian = historianOn(database)
      for (const [tenantId, taskId] of [['acme', 'task-a'], ['acme', 'task-b'], ['globex', 'task-a']] as const) {
        const f = new TaskEventFactory(tenantId, taskId)
        for (const batch of [[f.received()], [f.routingInvoked(), f.planCreated(['search'])], [f.toolExecuted('call-1', 'search')]]) {
          await historian.appendToTask(tenantId, taskId, batch, await historian.readTask(tenantId, taskId))
        }
      }
    })
  })

  it('exits 0 and says the chains are intact, as a table or as JSON', async () => {
    const table = await verify(['--tenant', 'acme'])
    expect(table.stderr).not.toMatch(/annalist:/)
    expect(table.code).toBe(0)
    expect(table.stdout.trim()).toBe('tenant acme: hash chains intact (2 streams, 8 events verified)')

    const json = await verify(['--tenant', 'acme', '--task', 'task-b', '--format', 'json'])
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout) as ChainVerification).toMatchObject({ tenantId: 'acme', taskId: 'task-b', intact: true, streamsChecked: 1, eventsChecked: 4, firstBreak: null })
  })

  it('exits 1 with a one-line error naming the variable when no key is configured, and when there is nothing to verify', async () => {
    const keyless = await verify(['--tenant', 'acme'], {})
    expect(keyless.code).toBe(1)
    expect(keyless.stderr.trim()).toMatch(/^annalist: ANNALIST_INTEGRITY_KEY: not set; .*ANNALIST_INTEGRITY_KEY_FILE.*\(run with --verbose for details\)$/)
    const short = await verify(['--tenant', 'acme'], { ANNALIST_INTEGRITY_KEY: 'abcd' })
    expect(short.stderr.trim()).toMatch(/^annalist: ANNALIST_INTEGRITY_KEY: decodes to 2 bytes; at least 32 are needed/)
    const unknownTask = await verify(['--tenant', 'acme', '--task', 'no-such-task'])
    expect(unknownTask.code).toBe(1)
    expect(unknownTask.stderr).toMatch(/^annalist: nothing to verify: task no-such-task of tenant acme has no events/)
  })

  it('exits 2 and prints the first broken link after a row is edited in SQL, or under another key', async () => {
    await withDataDir(async (database) => {
      await database.pool.query(`update events set data = jsonb_set(data, '{result,hits}', '99') where stream_name = 'tenant_acme-task-b' and stream_revision = 3`)
    })
    const table = await verify(['--tenant', 'acme'])
    expect(table.code).toBe(2)
    expect(table.stdout).toMatch(/^tenant acme: TAMPERING DETECTED in 1 of 2 streams \(8 events checked\)\nfirst broken link:\n/)
    expect(table.stdout).toMatch(/stream {4}tenant_acme-task-b {2}\(task task-b\)/)
    expect(table.stdout).toMatch(/revision {2}3 {3}event [0-9a-f-]{36} \(ToolCallExecuted\)/)
    expect(table.stdout).toMatch(/problem {3}content_edited: the stored hash does not match/)

    const json = await verify(['--tenant', 'acme', '--format', 'json'])
    expect(json.code).toBe(2)
    expect((JSON.parse(json.stdout) as ChainVerification).firstBreak).toMatchObject({ streamName: 'tenant_acme-task-b', revision: '3', kind: 'content_edited' })

    // The untouched task and the other tenant still verify.
    expect((await verify(['--tenant', 'acme', '--task', 'task-a'])).code).toBe(0)
    expect((await verify(['--tenant', 'globex'])).code).toBe(0)

    const otherKey = await verify(['--tenant', 'globex', '--format', 'json'], { ANNALIST_INTEGRITY_KEY: generateIntegrityKey() })
    expect(otherKey.code).toBe(2)
    expect((JSON.parse(otherKey.stdout) as ChainVerification).firstBreak).toMatchObject({ revision: '0', kind: 'anchor_mismatch' })
  })
})
