import { Command, Option } from 'commander'
import { version } from '../package.json'
import { projectorCommandOptions } from '../cli/commands/projectorOptions'
import { reportFatal } from '../cli/runtime/reportFatal'

/**
 * `annalist-dev`: the dev, demo and chaos machinery, kept out of the shipped `annalist` CLI (docs/architecture.md): the
 * demo, the fault campaign, the benchmarks, and the worker and projector with fault injection and the supervisor's
 * watchdog that the demo and the campaign supervise. Nothing under cli/ imports this.
 */
function buildProgram(): Command {
  const program = new Command('annalist-dev')
    .description('Annalist dev tools: the demo, the fault campaign and fault-injecting workers')
    .option('--verbose', 'print stack traces with errors')
    .version(`annalist-dev ${version} (Node ${process.version})`, '-V, --version', 'print the version and the Node.js it runs on')
    .showHelpAfterError()

  program
    .command('demo')
    .description('run the end-to-end demo on the embedded default: Temporal dev server, PGlite, worker and projector, with injected crashes')
    .option('--tenants <n>', 'number of tenants (default 3; 2 with --models local)')
    .option('--tasks <n>', 'tasks per tenant (default 5; 2 with --models local)')
    .addOption(new Option('--models <models>', 'scripted (deterministic, no network) or local (a real model: ANNALIST_LLM_BASE_URL, or the local llama.cpp server of `setup-local-llm`)').choices(['scripted', 'local']).default('scripted'))
    .option('--summary-json <path>', 'write the demo summary as JSON to this file')
    .action(async (options) => (await import('./demo/demo')).demoCommand(options))

  program
    .command('chaos')
    .description('run a seeded fault campaign (worker, projector, PostgreSQL and Temporal kills, model and tool faults) and check that nothing was lost or repeated')
    .option('--tenants <n>', 'number of tenants', '4')
    .option('--tasks <n>', 'tasks per tenant', '25')
    .option('--seed <n>', 'seed of the fault schedule and fault draws (default: random, printed so the run can be repeated)')
    .option('--faults <kinds>', 'fault kinds to inject, comma-separated: worker,projector,postgres,temporal,model,tool', 'worker,projector,postgres,temporal,model,tool')
    .option('--postgres-server', 'run a private PostgreSQL cluster (initdb + pg_ctl) instead of the embedded PGlite')
    .option('--deadline <seconds>', 'how long to wait for every workflow to end after the last start', '600')
    .option('--json <path>', 'write the invariants, faults injected and counts as JSON to this file')
    .action(async (options) => (await import('./chaos/chaos')).chaosCommand(options))

  program
    .command('embedded-postgres', { hidden: true })
    .description('serve an embedded PGlite data directory over the PostgreSQL protocol (used by chaos)')
    .requiredOption('--data-dir <dir>', 'PGlite data directory')
    .requiredOption('--socket-dir <dir>', 'owner-only directory for the Unix socket (created 0700 if missing)')
    .action(async (options) => (await import('./embeddedPostgres/embeddedPostgresProcess')).embeddedPostgresCommand(options))

  program
    .command('worker')
    .description('a pipeline worker with the fault plan of ANNALIST_FAULTS injected (models, tools, crash after append), stopping when its supervisor dies')
    .option('--dev', 'start a private Temporal dev server for this worker instead of using TEMPORAL_ADDRESS')
    .action(async (options) => (await import('./devWorker')).devWorkerCommand(options))

  const projector = program.command('projector').description('the projection worker, stopping when its supervisor dies')
  for (const option of projectorCommandOptions()) projector.addOption(option)
  projector.action(async (options) => (await import('./devWorker')).devProjectorCommand(options))

  return program
}

async function main(): Promise<void> {
  await buildProgram().parseAsync(process.argv)
}

main().catch((error: unknown) => reportFatal(error, process.argv.includes('--verbose')))
