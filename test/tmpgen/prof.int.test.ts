import { it } from 'vitest'
import { openDatabase } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { generateIntegrityKey, TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { seedExportLoad } from '../../bench/apiIsolationUnderLoad'
import { exportTenant } from '../../projections/export/tenantExport'
import { auditTrail } from '../../projections/auditTimeline/query'
import { verifyChain } from '../../historian/integrity/verifyChain'

it('profiles', async () => {
  const database = await openDatabase({ pgliteDataDir: 'memory://' })
  const store = new PostgresEventStore(database)
  const keyRing = TenantKeyRing.fromText(generateIntegrityKey())
  let t = performance.now()
  await seedExportLoad({ database, store, keyRing, tasks: 400 })
  console.log('seed', performance.now() - t)
  for (const size of [500, 100, 50, 20]) {
    t = performance.now(); const page = await store.readTenantLog('bulk', { maxCount: size }); console.log('page', size, (performance.now() - t).toFixed(1), page.length)
    t = performance.now(); await store.readTenantLog('bulk', { maxCount: size, after: page.at(-1)!.position }); console.log('page2', size, (performance.now() - t).toFixed(1))
  }
  for (let i = 0; i < 3; i++) { t = performance.now(); await auditTrail(database.pool, { tenantId: 'other', limit: 100 } as never); console.log('audit', (performance.now() - t).toFixed(1)) }
  for (const size of [500, 100]) {
    t = performance.now(); let n = 0; let max = 0; let last = performance.now()
    for await (const chunk of exportTenant({ store, keyRing, pageSize: size }, { tenantId: 'bulk' }, 'jsonl')) { n += chunk.length; const now = performance.now(); max = Math.max(max, now - last); last = now }
    console.log('export', size, (performance.now() - t).toFixed(0), n, 'max gap', max.toFixed(1))
  }
  t = performance.now(); await verifyChain({ store, keyRing, tenantId: 'bulk', pageSize: 100 }); console.log('verify', (performance.now() - t).toFixed(0))
  await store.close(); await database.close()
}, 300000)
