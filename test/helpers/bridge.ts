/**
 * `splitbrain bridge` for tests: started by PID on a socket and shim directory of the test's
 * own, stopped in `stop()`.
 */
import type { ChildProcess } from 'node:child_process';
import { startReportingCli, stopProcess } from './processes.js';

export interface BridgeProcess {
  readonly child: ChildProcess;
  readonly socket: string;
  readonly shimDir: string;
  log(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startBridgeProcess(natsUrl: string, agentId: string, socket: string, shimDir: string, args: string[] = []): Promise<BridgeProcess> {
  const { child, log } = await startReportingCli('bridge', [
    'bridge', natsUrl, '--agent', agentId, '--socket', socket, '--shim-dir', shimDir, '--log-level', 'info', ...args,
  ], {}, 20_000);
  return {
    child, socket, shimDir, log,
    async stop(signal = 'SIGTERM') { await stopProcess(child, signal); },
  };
}
