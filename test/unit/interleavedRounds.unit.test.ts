import { describe, expect, it } from 'vitest'
import { interleaveRounds, median } from '../../bench/interleavedRounds'

describe('interleaveRounds', () => {
  it('alternates which variant goes first, and keeps each variant its own results in run order', async () => {
    const calls: string[] = []
    const results = await interleaveRounds(['a', 'b'], 4, async (variant, round) => {
      calls.push(`${variant}${round}`)
      return round * 10 + (variant === 'a' ? 1 : 2)
    })
    expect(calls).toEqual(['a0', 'b0', 'b1', 'a1', 'a2', 'b2', 'b3', 'a3'])
    expect(results).toEqual({ a: [1, 11, 21, 31], b: [2, 12, 22, 32] })
  })

  it('reverses the whole order on odd rounds when there are more than two variants', async () => {
    const calls: string[] = []
    await interleaveRounds(['x', 'y', 'z'], 2, async (variant) => {
      calls.push(variant)
      return 0
    })
    expect(calls).toEqual(['x', 'y', 'z', 'z', 'y', 'x'])
  })

  it('refuses no variants, repeated names and a round count below one, before measuring anything', async () => {
    let measured = 0
    const measure = async () => ++measured
    await expect(interleaveRounds([], 3, measure)).rejects.toThrow(/no variants/)
    await expect(interleaveRounds(['a', 'a'], 3, measure)).rejects.toThrow(/repeat: a, a/)
    await expect(interleaveRounds(['a'], 0, measure)).rejects.toThrow(/rounds must be a whole number >= 1, got 0/)
    await expect(interleaveRounds(['a'], 1.5, measure)).rejects.toThrow(/got 1.5/)
    expect(measured).toBe(0)
  })
})

describe('median', () => {
  it('takes the middle value of an odd count and the mean of the two middle values of an even count, whatever the order', () => {
    expect(median([9, 1, 5])).toBe(5)
    expect(median([4, 1, 3, 2])).toBe(2.5)
    expect(median([7])).toBe(7)
  })

  it('ignores one outlier round', () => {
    expect(median([10, 11, 250, 9, 10])).toBe(10)
  })

  it('refuses an empty list', () => {
    expect(() => median([])).toThrow(/median of no values/)
  })
})
