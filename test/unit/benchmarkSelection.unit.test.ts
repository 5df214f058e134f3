import { describe, expect, it } from 'vitest'
import { selectBenchmarks } from '../../bench/benchmarkSelection'

const AVAILABLE = ['historianOverhead', 'appendVsRawInsert', 'tenantReadIsolation'] as const

describe('selectBenchmarks (--only)', () => {
  it('selects every benchmark when --only is not given', () => {
    expect([...selectBenchmarks(undefined, AVAILABLE)]).toEqual([...AVAILABLE])
  })

  it('selects the named ones, with spaces around commas and repeats tolerated', () => {
    expect([...selectBenchmarks('tenantReadIsolation', AVAILABLE)]).toEqual(['tenantReadIsolation'])
    expect([...selectBenchmarks(' appendVsRawInsert , tenantReadIsolation,appendVsRawInsert', AVAILABLE)].sort()).toEqual(['appendVsRawInsert', 'tenantReadIsolation'])
  })

  it('refuses an unknown name, naming it and listing the valid names', () => {
    expect(() => selectBenchmarks('appendVsRawInsert,snapshotFold', AVAILABLE)).toThrow(
      '--only: unknown benchmark "snapshotFold"; choose from historianOverhead, appendVsRawInsert, tenantReadIsolation',
    )
    expect(() => selectBenchmarks('AppendVsRawInsert', AVAILABLE)).toThrow(/unknown benchmark "AppendVsRawInsert"/)
  })

  it('leaves the opt-in benchmarks out of the default run, and runs them when named', () => {
    expect([...selectBenchmarks(undefined, AVAILABLE, ['tenantReadIsolation'])]).toEqual(['historianOverhead', 'appendVsRawInsert'])
    expect([...selectBenchmarks('tenantReadIsolation', AVAILABLE, ['tenantReadIsolation'])]).toEqual(['tenantReadIsolation'])
  })

  it('refuses an empty list', () => {
    expect(() => selectBenchmarks('', AVAILABLE)).toThrow(/--only needs at least one benchmark name/)
    expect(() => selectBenchmarks(' , ', AVAILABLE)).toThrow(/--only needs at least one benchmark name/)
  })
})
