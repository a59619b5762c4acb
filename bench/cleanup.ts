/**
 * Teardown of everything the benchmark started, in reverse order of starting: unmount before
 * killing the process that serves the mount, kill before removing the directories it used.
 * Every step is bounded, and a failing step never stops the ones after it.
 */

const STEP_TIMEOUT_MS = 15_000;

interface Step {
  label: string;
  run: () => Promise<void>;
}

export class Cleanup {
  private readonly steps: Step[] = [];
  private running: Promise<void> | undefined;

  /** True once the cleanup has begun: nothing new may be started then. */
  get started(): boolean {
    return this.running !== undefined;
  }

  add(label: string, run: () => Promise<void>): void {
    this.steps.push({ label, run });
  }

  /** Runs every step once, newest first; later calls wait for the first one. */
  runAll(): Promise<void> {
    this.running ??= this.runSteps();
    return this.running;
  }

  private async runSteps(): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop() as Step;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          process.stderr.write(`bench: cleanup step '${step.label}' `
            + `took over ${STEP_TIMEOUT_MS / 1000} s; moving on\n`);
          resolve();
        }, STEP_TIMEOUT_MS);
      });
      try {
        await Promise.race([step.run(), timeout]);
      } catch (err) {
        process.stderr.write(`bench: cleanup step '${step.label}' failed: ${(err as Error).message}\n`);
      } finally {
        clearTimeout(timer);
      }
    }
  }
}

/** On SIGINT, SIGTERM or SIGHUP: run `beforeCleanup`, the cleanup, then exit 128+signal. The
 * interrupted main flow may go on meanwhile, but can start nothing (see `started`). */
export function cleanUpOnSignals(cleanup: Cleanup, beforeCleanup: () => void): void {
  const signals = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;
  for (const [name, number] of Object.entries(signals)) {
    process.once(name, () => {
      process.stderr.write(`bench: ${name}: cleaning up\n`);
      beforeCleanup();
      void cleanup.runAll().finally(() => process.exit(128 + number));
    });
  }
}
