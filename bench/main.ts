import { Command } from 'commander'
import { reportFatal } from '../cli/runtime/reportFatal'

/** `npm run bench` (bin/annalist-bench.js): the benchmarks, their own program, so that no other code imports bench/. */
function buildProgram(): Command {
  const program = new Command('annalist-bench').option('--verbose', 'print stack traces with errors').showHelpAfterError()
  program
    .description('run the benchmarks; ratios are measured side by side in one run')
    .option('--json <path>', 'write the figures as JSON to this file')
    .option('--pipelines <n>', 'pipelines per measured round', '12')
    .option('--rounds <n>', 'interleaved rounds of each variant', '3')
    .option('--model-latency-ms <ms>', 'think time per model call for the second, realistic measurement', '250')
    .option('--only <names>', 'run only these benchmarks, comma-separated (an unknown name lists them)')
    .option('--real-model-tasks <n>', 'tasks per variant of realModelCompletion (opt-in: --only realModelCompletion)', '20')
    .action(async (options) => (await import('./bench')).benchCommand(options))

  return program
}

buildProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => reportFatal(error, process.argv.includes('--verbose')))
