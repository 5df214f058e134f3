import { spawn, type ChildProcess } from 'node:child_process'
import { openSync, closeSync } from 'node:fs'
import path from 'node:path'
import { packageRoot } from '../../historian/packageRoot'
import { SUPERVISOR_PID_VARIABLE } from './supervisorWatchdog'

const CLI_ENTRY = path.join(packageRoot(), 'bin', 'annalist-dev.js')

/** One exit of a supervised child that nobody asked for. */
export interface UnplannedExit {
  readonly at: number
  readonly pid: number
  readonly signal: NodeJS.Signals | null
  readonly code: number | null
}

/**
 * Runs an `annalist <command>` child process and restarts it whenever it exits without being asked to,
 * the way a process manager would. Output goes to a log file.
 */
export class SupervisedProcess {
  private child: ChildProcess | undefined
  private stopping = false
  private readonly exits: UnplannedExit[] = []

  constructor(
    readonly name: string,
    private readonly args: readonly string[],
    private readonly env: NodeJS.ProcessEnv,
    private readonly logPath: string,
    private readonly restartDelayMs = 200,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid
  }

  /** Exits that were not asked for: crashes, SIGKILLs, faults. */
  get unplannedExits(): readonly UnplannedExit[] {
    return this.exits
  }

  start(): void {
    const log = openSync(this.logPath, 'a')
    const child = spawn(process.execPath, [CLI_ENTRY, ...this.args], { env: { ...this.env, [SUPERVISOR_PID_VARIABLE]: String(process.pid) }, stdio: ['ignore', log, log] })
    closeSync(log)
    this.child = child
    // However the supervisor ends (an uncaught error included), its children go with it; a SIGKILLed supervisor is covered
    // by the children's own watchdog (exitWhenSupervisorDies).
    const killOnExit = () => child.kill('SIGKILL')
    process.once('exit', killOnExit)
    child.once('exit', () => process.off('exit', killOnExit))
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = undefined
      if (this.stopping) return
      this.exits.push({ at: Date.now(), pid: child.pid ?? -1, signal, code })
      setTimeout(() => {
        if (!this.stopping) this.start()
      }, this.restartDelayMs)
    })
  }

  /** Sends a signal to the current child (SIGKILL to simulate a crash); the supervisor restarts it. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): number | undefined {
    const pid = this.child?.pid
    this.child?.kill(signal)
    return pid
  }

  /** Stops the child for good: SIGTERM, then SIGKILL after a grace period. */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopping = true
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    await exited
    clearTimeout(timer)
  }
}
