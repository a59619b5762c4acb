/**
 * Going to the background the way sshfs does: the command re-runs itself with --foreground,
 * waits until the child reports the mount ready (or failed) on its start-report pipe, and exits
 * with that result, so `splitbrain mount ... && ls MOUNTPOINT` works and errors reach the terminal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { START_REPORT_FD, readStartReport, startReportEnv, type StartReport } from './start-report.js';
import { withMountFlags } from './node-flags.js';

/** The child's start report, or its spawn failure; the report pipe is closed after. */
async function startReportOf(child: ChildProcess, timeoutMs: number): Promise<StartReport> {
  const spawnFailed = new Promise<string>((resolve) => child.on('error', (err) => resolve(err.message)));
  const pipe = child.stdio[START_REPORT_FD] as Readable;
  const report = await Promise.race([
    readStartReport(pipe, timeoutMs),
    spawnFailed.then((message) => ({ ok: false as const, message })),
  ]);
  pipe.destroy();
  return report;
}

/** In the parent: starts the child and resolves with the exit status to use. */
export async function daemonize(argv: string[], startTimeoutMs = 60_000): Promise<number> {
  const child = spawn(process.execPath, [...withMountFlags(process.execArgv), ...argv, '--foreground'], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...startReportEnv() },
  });
  const report = await startReportOf(child, startTimeoutMs);
  // Nothing we start may hang for ever: a child that neither succeeds nor fails is stopped.
  if (!report.ok && child.exitCode === null) child.kill('SIGTERM');
  child.unref();
  if (report.ok) return 0;
  process.stderr.write(`splitbrain: ${report.message}\n`);
  return 1;
}

export interface ChildServer {
  /** Resolves when the child has exited. */
  readonly exited: Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Runs `splitbrain <argv>` (a foreground server that reports its start) as our child, for as
 * long as we run: the sidecar mounts the devices this way, because a FUSE mount on a directory
 * of our own FUSE mount must not be made from the process that serves it (the mount's path
 * lookup would wait for the event loop that waits for the mount).
 */
export async function startChildServer(argv: string[], startTimeoutMs = 60_000, options: { detached?: boolean } = {}): Promise<ChildServer> {
  const child = spawn(process.execPath, [...withMountFlags(process.execArgv), process.argv[1] ?? '', ...argv], {
    // detached: a session of its own, out of reach of the terminal's Ctrl-C (`splitbrain shell`).
    detached: options.detached ?? false,
    stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
    env: { ...process.env, ...startReportEnv() },
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const stop = async (graceMs = 10_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  const report = await startReportOf(child, startTimeoutMs);
  if (!report.ok) {
    await stop(1000);
    throw new Error(report.message);
  }
  return { exited, stop };
}
