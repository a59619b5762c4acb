/**
 * Long-lived children (nats-server, agent, mounts, sshd): output to a log file, stopped by their
 * own PID (SIGTERM, then SIGKILL) as a cleanup step registered the moment they start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { START_REPORT_FD, readStartReport, startReportEnv, type StartReport } from '../cli/start-report.js';
import type { Cleanup } from './cleanup.js';

export interface DaemonOptions {
  label: string;
  command: string;
  args: string[];
  /** stdout and stderr of the child are appended here. */
  logPath: string;
  env?: NodeJS.ProcessEnv;
  /** Open a pipe on fd 3 and ask the child for its start report (cli/start-report.ts). */
  readyPipe?: boolean;
}

export interface Daemon {
  readonly label: string;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly logPath: string;
  /** Resolves with a description of how it ended. */
  readonly exited: Promise<string>;
  isRunning(): boolean;
  stop(): Promise<void>;
}

export class DaemonStartError extends Error {
  override name = 'DaemonStartError';
}

const STOP_GRACE_MS = 5000;

function waitFor(exited: Promise<string>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void exited.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // It exited between our check and the signal.
  }
}

export function startDaemon(options: DaemonOptions, cleanup: Cleanup): Daemon {
  if (cleanup.started) throw new DaemonStartError(`shutting down: not starting ${options.label}`);
  const logFd = openSync(options.logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(options.command, options.args, {
      // A child asked for a start report gets the environment that makes it write one.
      env: { ...(options.env ?? process.env), ...(options.readyPipe ? startReportEnv() : {}) },
      // Its own process group: a Ctrl-C on our terminal reaches only us, and we stop it in order.
      detached: true,
      stdio: options.readyPipe ? ['ignore', logFd, logFd, 'pipe'] : ['ignore', logFd, logFd],
    });
  } finally {
    closeSync(logFd);
  }
  let running = true;
  const exited = new Promise<string>((resolve) => {
    child.once('error', (err) => { running = false; resolve(`could not start: ${err.message}`); });
    child.once('exit', (code, signal) => {
      running = false;
      resolve(signal ? `killed by ${signal}` : `exited ${code}`);
    });
  });
  const pid = child.pid;
  if (pid === undefined) throw new DaemonStartError(`${options.label}: ${options.command} did not start`);
  const daemon: Daemon = {
    label: options.label, pid, child, logPath: options.logPath, exited,
    isRunning: () => running,
    async stop() {
      if (!running) return;
      signal(pid, 'SIGTERM');
      if (await waitFor(exited, STOP_GRACE_MS)) return;
      process.stderr.write(`bench: ${options.label} (pid ${pid}) ignored SIGTERM; sending SIGKILL\n`);
      signal(pid, 'SIGKILL');
      await waitFor(exited, 2000);
    },
  };
  cleanup.add(`stop ${options.label} (pid ${pid})`, () => daemon.stop());
  return daemon;
}

/** The daemon's log, for error messages: its last lines. */
export async function logTail(daemon: Daemon, lines = 5): Promise<string> {
  const text = await readFile(daemon.logPath, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-lines).join(' | ');
}

/** The child's start report (cli/start-report.ts), read from its fd 3 pipe (`readyPipe`). */
export function readyReport(daemon: Daemon, timeoutMs: number): Promise<StartReport> {
  const pipe = daemon.child.stdio[START_REPORT_FD] as Readable | null | undefined;
  if (!pipe) return Promise.resolve({ ok: false, message: 'no start-report pipe' });
  return readStartReport(pipe, timeoutMs);
}

/** Polls `check` every 100 ms until it returns a value, the daemon dies, or `timeoutMs` passes. */
export async function waitUntil<T>(
  daemon: Daemon, what: string, timeoutMs: number, check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (!daemon.isRunning()) {
      throw new DaemonStartError(`${daemon.label} ${await daemon.exited} before ${what}: ${await logTail(daemon)}`);
    }
    if (Date.now() > deadline) {
      throw new DaemonStartError(`${daemon.label}: no ${what} within ${timeoutMs / 1000} s: ${await logTail(daemon)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
