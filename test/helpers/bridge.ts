/**
 * `splitbrain bridge` for tests: started by PID on a socket and shim directory of the test's
 * own, stopped in `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { START_REPORT_FD, readStartReport, startReportEnv } from '../../cli/start-report.js';
import { CLI, stopProcess } from './processes.js';

export interface BridgeProcess {
  readonly child: ChildProcess;
  readonly socket: string;
  readonly shimDir: string;
  log(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startBridgeProcess(natsUrl: string, agentId: string, socket: string, shimDir: string, args: string[] = []): Promise<BridgeProcess> {
  const child = spawn(process.execPath, [
    CLI, 'bridge', natsUrl, '--agent', agentId, '--socket', socket, '--shim-dir', shimDir, '--log-level', 'info', ...args,
  ], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'], env: { ...process.env, ...startReportEnv() } });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => { log = (log + d.toString()).slice(-50_000); });
  const report = await readStartReport(child.stdio[START_REPORT_FD] as Readable, 20_000);
  if (!report.ok) {
    child.kill('SIGKILL');
    throw new Error(`bridge failed: ${report.message}\n${log}`);
  }
  return {
    child, socket, shimDir, log: () => log,
    async stop(signal = 'SIGTERM') { await stopProcess(child, signal); },
  };
}
