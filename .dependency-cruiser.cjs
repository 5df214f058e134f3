/**
 * The layers of Annalist and the directions their imports may take (docs/architecture.md). Checked by
 * `npm run check:layers` (dependency-cruiser) in `npm run check`, and proven able to fail by
 * test/unit/layerRules.unit.test.ts.
 *
 *   cli ─────────┐   dev (demo, chaos, supervisor, fault injection, the PGlite wire server) sits beside cli, on top
 *   api ──┐      │
 *   projections ─┤   activities ── workflows/api (the workflow contract)
 *   historian ◄──┴── (everything)  workflows: type-only imports from other layers
 *
 * Nothing imports test/ or bench/; production code never imports dev/.
 */
const PRODUCTION = '^(workflows|activities|historian|projections|api|cli)/'

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle ties modules together so that neither can change or load alone.',
      from: {},
      to: { circular: true, dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'workflows-import-types-only',
      severity: 'error',
      comment: 'Workflow code runs in Temporal\'s sandbox: from other layers it imports types only, and the domain catalogue.',
      from: { path: '^workflows/' },
      to: { path: '^(activities|historian|projections|api|cli|dev|bench|test)/', pathNot: '^historian/events/catalogue\\.ts$', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'catalogue-imports-nothing',
      severity: 'error',
      comment: 'The domain catalogue is imported by every layer, workflows included: it stays plain data with no imports.',
      from: { path: '^historian/events/catalogue\\.ts$' },
      to: {},
    },
    {
      name: 'activities-depend-on-historian',
      severity: 'error',
      comment: 'Activities build on the historian (and the workflow contract in workflows/api.ts), nothing above them.',
      from: { path: '^activities/' },
      to: { path: ['^(projections|api|cli|dev|bench|test)/', '^workflows/(?!api\\.ts$)'] },
    },
    {
      name: 'historian-is-the-bottom',
      severity: 'error',
      comment: 'The historian depends on no other layer.',
      from: { path: '^historian/' },
      to: { path: '^(workflows|activities|projections|api|cli|dev|bench|test)/' },
    },
    {
      name: 'projections-depend-on-historian',
      severity: 'error',
      comment: 'Projections read the historian\'s log and nothing else of the product.',
      from: { path: '^projections/' },
      to: { path: '^(workflows|activities|api|cli|dev|bench|test)/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'api-depends-on-projections-and-historian',
      severity: 'error',
      comment: 'The API answers from read models and the log; it starts nothing itself (the CLI wires operations in).',
      from: { path: '^api/' },
      to: { path: '^(workflows|activities|cli|dev|bench|test)/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'production-never-imports-dev',
      severity: 'error',
      comment: 'Demo, chaos, supervisor, fault injection and the PGlite wire server are dev machinery: nothing shipped imports them.',
      from: { path: PRODUCTION },
      to: { path: '^dev/' },
    },
    {
      name: 'nothing-imports-tests-or-benchmarks',
      severity: 'error',
      comment: 'Tests and benchmarks are leaves: no other code imports them.',
      from: { pathNot: '^(test|bench)/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'benchmarks-do-not-import-tests',
      severity: 'error',
      comment: 'Benchmarks share set-up with tests through dev/, not by importing test/.',
      from: { path: '^bench/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'] },
  },
}
