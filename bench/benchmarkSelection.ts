/**
 * Which benchmarks `--only` selects: a comma-separated list of names from `available` (spaces allowed); unset
 * selects all of them but the `optIn` ones (too long for the default run), which run only when named. An empty list or
 * an unknown name is refused with an error that lists the valid names.
 */
export function selectBenchmarks<Name extends string>(only: string | undefined, available: readonly Name[], optIn: readonly Name[] = []): Set<Name> {
  if (only === undefined) return new Set(available.filter((name) => !optIn.includes(name)))
  const names = only.split(',').map((name) => name.trim())
  if (names.every((name) => name === '')) throw new RangeError(`--only needs at least one benchmark name: ${available.join(', ')}`)
  const selected = new Set<Name>()
  for (const name of names) {
    if (name === '') continue
    const known = available.find((candidate) => candidate === name)
    if (!known) throw new RangeError(`--only: unknown benchmark ${JSON.stringify(name)}; choose from ${available.join(', ')}`)
    selected.add(known)
  }
  return selected
}
