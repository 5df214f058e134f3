import { Command, Option } from 'commander'
import { reportFatal } from './runtime/reportFatal'

/** The `annalist` CLI: one program, one sub-command per process or query. Commands load lazily so each starts fast. */
function buildProgram(): Command {
  const program = new Command('annalist')
    .description('Orchestrator-plus-historian for multi-tenant AI agent pipelines')
    .option('--verbose', 'print stack traces with errors')
    .showHelpAfterError()

  program
    .command('demo')
    .description('run the end-to-end demo on the embedded default: Temporal dev server, PGlite, worker and projector, with injected crashes')
    .option('--tenants <n>', 'number of tenants', '3')
    .option('--tasks <n>', 'tasks per tenant', '5')
    .option('--summary-json <path>', 'write the demo summary as JSON to this file')
    .option('--keep-data', 'keep the demo data directory afterwards')
    .action(async (options) => (await import('./commands/demo')).demoCommand(options))

  program
    .command('worker')
    .description('run a pipeline worker (Temporal activities and workflows) until SIGINT/SIGTERM')
    .action(async () => (await import('./commands/worker')).workerCommand())

  program
    .command('projector')
    .description('run the projection worker: follows the event log and builds the audit timeline and task summaries')
    .action(async () => (await import('./commands/projector')).projectorCommand())

  program
    .command('start')
    .description('start the pipeline for one tenant task (a second start of the same task returns the same pipeline)')
    .requiredOption('--tenant <tenantId>', 'tenant ID')
    .requiredOption('--task <taskId>', 'task ID')
    .requiredOption('--input <text>', 'what the agent is asked to do')
    .option('--wait', 'wait for the pipeline to finish and print its result')
    .action(async (options) => (await import('./commands/start')).startCommand(options))

  program
    .command('audit')
    .description("print one tenant's audit timeline (optionally one task) from the read model")
    .argument('<tenant>', 'tenant ID')
    .argument('[task]', 'task ID')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .option('--limit <n>', 'most rows to print', '500')
    .action(async (tenant, task, options) => (await import('./commands/audit')).auditCommand(tenant, task, options))

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
    .command('setup-temporal')
    .description('build and cache the temporal CLI (go install github.com/temporalio/cli/cmd/temporal@v1.5.1)')
    .action(async () => (await import('./runtime/temporalBinary')).setupTemporalCommand())

  program
    .command('bench')
    .description('run the benchmarks; ratios are measured side by side in one run')
    .option('--json <path>', 'write the figures as JSON to this file')
    .option('--pipelines <n>', 'pipelines per measured round', '12')
    .option('--rounds <n>', 'interleaved rounds of each variant', '3')
    .option('--model-latency-ms <ms>', 'think time per model call for the second, realistic measurement', '250')
    .option('--only <names>', 'run only these benchmarks, comma-separated (an unknown name lists them)')
    .action(async (options) => (await import('../bench/bench')).benchCommand(options))

  return program
}

async function main(): Promise<void> {
  await buildProgram().parseAsync(process.argv)
}

main().catch((error: unknown) => reportFatal(error, process.argv.includes('--verbose')))
