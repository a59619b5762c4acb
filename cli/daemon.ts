/**
 * Going to the background the way sshfs does: the command re-runs itself with --foreground,
 * waits until the child reports the mount ready (or failed) on a pipe, and exits with that
 * result, so `splitbrain mount ... && ls MOUNTPOINT` works and errors reach the terminal.
 */
import { spawn } from 'node:child_process';
import { closeSync, writeSync } from 'node:fs';

const READY_FD_ENV = 'SPLITBRAIN_READY_FD';
const READY_FD = 3;

/** In the child: tell the waiting parent how the start went. No-op when not daemonized. */
export function reportStart(error?: Error): void {
  if (process.env[READY_FD_ENV] !== String(READY_FD)) return;
  delete process.env[READY_FD_ENV];
  // Synchronous: the process may exit right after a failure is reported.
  writeSync(READY_FD, error ? `error ${error.message}\n` : 'ready\n');
  closeSync(READY_FD);
}

/** In the parent: starts the child and resolves with the exit status to use. */
export function daemonize(argv: string[], startTimeoutMs = 60_000): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, ...argv, '--foreground'], {
      detached: true,
      stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
      env: { ...process.env, [READY_FD_ENV]: String(READY_FD) },
    });
    let said = '';
    const pipe = child.stdio[READY_FD];
    pipe?.on('data', (chunk: Buffer) => { said += chunk.toString(); });
    const finish = (status: number, message?: string) => {
      if (message) process.stderr.write(`splitbrain: ${message}\n`);
      pipe?.destroy();
      child.unref();
      resolve(status);
    };
    pipe?.on('end', () => {
      if (said.startsWith('ready')) finish(0);
      else finish(1, said.startsWith('error ') ? said.slice(6).trim() : 'mount process ended before it was ready');
    });
    child.on('error', (err) => finish(1, err.message));
    // Nothing we start may hang for ever: a child that neither succeeds nor fails is stopped.
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      finish(1, `mount did not become ready within ${startTimeoutMs / 1000} s`);
    }, startTimeoutMs);
    timer.unref();
  });
}
