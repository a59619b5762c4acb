/**
 * Child processes for tests: started by us, stopped by PID, every wait bounded.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { START_REPORT_FD, readStartReport, startReportEnv } from '../../cli/start-report.js';

export const CLI = new URL('../../cli/main.js', import.meta.url).pathname;

/** Waits for `child` to exit, up to `timeoutMs`; then SIGKILLs it. Resolves with its code. */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const [code] = (await exited) as [number | null];
    return code;
  } finally {
    clearTimeout(timer);
  }
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`) and collects its output. */
export async function run(command: string, args: string[], options: SpawnOptions & { timeoutMs?: number; input?: string | Buffer } = {}): Promise<RunResult> {
  const child = spawn(command, args, { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], ...options });
  let stdout = '';
  let stderr = '';
  // Decoded as a stream: a character whose bytes two reads split must not become two U+FFFD.
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  // A child that exits without reading its input must not fail the test with EPIPE.
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(options.input);
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  try {
    // 'close', not 'exit': output still in the pipes when the child exits arrives before it.
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    return { code, signal, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a Python script (`python3 -c`) with `args`; its stdout, once it exited 0 (else the test fails with its stderr). */
export async function pythonOut(script: string, ...args: string[]): Promise<string> {
  const result = await run('python3', ['-c', script, ...args]);
  if (result.code !== 0) throw new Error(`python3 exited ${result.code ?? result.signal}: ${result.stderr}`);
  return result.stdout;
}

/** Runs `sh -c script` and fails with its output if it does not exit 0. */
export async function sh(script: string, options: SpawnOptions & { timeoutMs?: number } = {}): Promise<string> {
  const result = await run('sh', ['-c', script], options);
  if (result.code !== 0) {
    throw new Error(`sh -c ${JSON.stringify(script)} exited ${result.code ?? result.signal}:\n${result.stderr}${result.stdout}`);
  }
  return result.stdout;
}

/** Polls `check` every `intervalMs` until it returns true; throws after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** True while a process with this pid exists (a zombie included). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface CollectingProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
}

/** Starts a long-running child whose output the test watches while it runs (stdin /dev/null). */
export function spawnCollecting(command: string, args: string[], options: SpawnOptions = {}): CollectingProcess {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  // Decoded as a stream: a character whose bytes two reads split must not become two U+FFFD.
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  return { child, stdout: () => stdout, stderr: () => stderr };
}

/** Runs `splitbrain ARGS` and resolves once it reports its start ready (cli/start-report.ts). */
export async function startReportingCli(
  what: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000,
): Promise<{ child: ChildProcess; log(): string }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env, ...startReportEnv() },
  });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => { log = (log + d.toString()).slice(-50_000); });
  const report = await readStartReport(child.stdio[START_REPORT_FD] as Readable, timeoutMs);
  if (!report.ok) {
    child.kill('SIGKILL');
    throw new Error(`${what} failed: ${report.message}\n${log}`);
  }
  return { child, log: () => log };
}
