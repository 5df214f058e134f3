import { projectorCommand, type ProjectorOptions } from '../cli/commands/projector'
import { workerCommand } from '../cli/commands/worker'
import { faultDecorators } from './faults/faultDecorators'
import { faultPlanFromEnv } from './faults/faultPlan'
import { exitWhenSupervisorDies } from './supervisor/supervisorWatchdog'

/** Ends the process gracefully when the supervisor that started it (ANNALIST_SUPERVISOR_PID) is gone. */
const watchSupervisor = { onRunning: (stop: () => void) => void exitWhenSupervisorDies(stop) }

/**
 * `annalist-dev worker`: the production worker with the fault plan of ANNALIST_FAULTS injected (dev/faults/) and the
 * supervisor's watchdog; what the demo, the fault campaign, the recovery benchmark and the crash tests run.
 */
export async function devWorkerCommand(options: { dev?: boolean }): Promise<void> {
  await workerCommand(options, { ...watchSupervisor, decorators: faultDecorators(faultPlanFromEnv(process.env)) })
}

/** `annalist-dev projector`: the production projector with the supervisor's watchdog. */
export async function devProjectorCommand(options: ProjectorOptions): Promise<void> {
  await projectorCommand(options, watchSupervisor)
}
