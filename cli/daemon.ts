/**
 * Going to the background the way sshfs does: the command re-runs itself with --foreground,
 * waits until the child reports the mount ready (or failed) on its start-report pipe, and exits
 * with that result, so `splitbrain mount ... && ls MOUNTPOINT` works and errors reach the terminal.
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { START_REPORT_FD, readStartReport, startReportEnv } from './start-report.js';

/** In the parent: starts the child and resolves with the exit status to use. */
export async function daemonize(argv: string[], startTimeoutMs = 60_000): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, ...argv, '--foreground'], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...startReportEnv() },
  });
  const spawnFailed = new Promise<string>((resolve) => child.on('error', (err) => resolve(err.message)));
  const pipe = child.stdio[START_REPORT_FD] as Readable;
  const report = await Promise.race([
    readStartReport(pipe, startTimeoutMs),
    spawnFailed.then((message) => ({ ok: false as const, message })),
  ]);
  pipe.destroy();
  // Nothing we start may hang for ever: a child that neither succeeds nor fails is stopped.
  if (!report.ok && child.exitCode === null) child.kill('SIGTERM');
  child.unref();
  if (report.ok) return 0;
  process.stderr.write(`splitbrain: ${report.message}\n`);
  return 1;
}
