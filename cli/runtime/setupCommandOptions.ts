/** What a setup command (`annalist setup-temporal`, `annalist setup-local-llm`) reads and where it writes. */
export interface SetupCommandOptions {
  readonly env?: NodeJS.ProcessEnv
  /** Receives what the command found or installed, for a script to read. Defaults to process.stdout. */
  readonly stdout?: NodeJS.WritableStream
  /** Receives progress. Defaults to process.stderr. */
  readonly stderr?: NodeJS.WriteStream
}

/** The options with this process's environment and streams in place of the missing ones. */
export function setupCommandStreams(options: SetupCommandOptions): Required<SetupCommandOptions> {
  return { env: options.env ?? process.env, stdout: options.stdout ?? process.stdout, stderr: options.stderr ?? process.stderr }
}
