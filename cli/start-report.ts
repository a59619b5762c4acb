/**
 * How a process started in the background tells its parent how its start went: one line on
 * file descriptor 3, "ready" or "error <message>", when the environment asks for it. Used by
 * `splitbrain mount` going to the background, and by tests and benchmarks that wait for a
 * foreground mount.
 */
import { closeSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';

const ENV = 'SPLITBRAIN_READY_FD';
/** The descriptor the report is written on (the parent opens a pipe there). */
export const START_REPORT_FD = 3;

export type StartReport = { ok: true } | { ok: false; message: string };

/** Environment that makes a child report its start on START_REPORT_FD. */
export function startReportEnv(): Record<string, string> {
  return { [ENV]: String(START_REPORT_FD) };
}

/** In the child: report how the start went. No-op when nobody asked. */
export function reportStart(error?: Error): void {
  if (process.env[ENV] !== String(START_REPORT_FD)) return;
  delete process.env[ENV];
  // Synchronous: the process may exit right after a failure is reported.
  writeSync(START_REPORT_FD, error ? `error ${error.message}\n` : 'ready\n');
  closeSync(START_REPORT_FD);
}

/** In the parent: the report read from the child's pipe, or a failure after `timeoutMs`. */
export function readStartReport(pipe: Readable, timeoutMs: number): Promise<StartReport> {
  return new Promise((resolve) => {
    let said = '';
    const timer = setTimeout(() => resolve({ ok: false, message: `no start report within ${timeoutMs / 1000} s` }), timeoutMs);
    pipe.on('data', (chunk: Buffer) => { said += chunk.toString(); });
    pipe.on('error', () => undefined);
    pipe.on('end', () => {
      clearTimeout(timer);
      const line = said.trim();
      if (line === 'ready') resolve({ ok: true });
      else resolve({ ok: false, message: line.startsWith('error ') ? line.slice(6) : 'ended before it was ready' });
    });
  });
}
