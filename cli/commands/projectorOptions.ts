import { Option } from 'commander'

/**
 * The command-line options of `annalist projector`, defined once: `annalist-dev projector` runs the same projector and
 * takes the same options. Kept apart from the command so a program can declare them without loading the projector.
 */
export function projectorCommandOptions(): Option[] {
  return [
    new Option('--batch-size <n>', 'events per transaction').default('100'),
    new Option('--metrics-port <port>', 'serve Prometheus metrics (projection lag, events behind, dead letters) on this port at /metrics'),
    new Option('--metrics-host <address>', 'the address the metrics endpoint listens on (default 127.0.0.1; 0.0.0.0 for every interface)'),
  ]
}
