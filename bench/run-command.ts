/**
 * One-shot programs (`sh -c`, dd, tar, find, git), each with a deadline and timed by wall clock.
 * Each runs in its own process group, so a timeout kills the shell and everything it started.
 * `runArgv` starts a program with no shell in front, for timings where a shell's own start
 * would count.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

/** Output beyond this is dropped: we only keep it to explain failures and to check results. */
const MAX_CAPTURE = 256 * 1024;

export interface CommandOptions {
  timeoutMs: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** A cleanup command (an unmount): runs even after stopAllCommands. */
  cleanup?: boolean;
  /**
   * Each in turn: once the program has printed `text` on stdout, `answer()` is written to its
   * stdin (open only then, closed after the last): a program that waits there while its caller does
   * something (reads other processes' CPU time: call-bench.ts).
   */
  prompts?: readonly { text: string; answer: () => string }[];
}

export interface CommandResult {
  ms: number;
  stdout: string;
  stderr: string;
}

export class CommandFailedError extends Error {
  override name = 'CommandFailedError';
  constructor(
    readonly script: string, readonly status: string, readonly stderr: string, readonly stdout = '',
    options?: { cause?: unknown },
  ) {
    const said = stderr.trim().split('\n').slice(-3).join(' | ');
    super(`'${script}' ${status}${said ? `: ${said}` : ''}`, options);
  }
}

export class CommandTimeoutError extends Error {
  override name = 'CommandTimeoutError';
  constructor(readonly script: string, readonly timeoutMs: number) {
    super(`'${script}' did not finish within ${timeoutMs / 1000} s`);
  }
}

export class CommandsStoppedError extends Error {
  override name = 'CommandsStoppedError';
}

/** Process groups of the commands running now, so a signal handler can stop them. */
const running = new Set<number>();
let stopped = false;

/** Kills every running command and refuses new ones: we are shutting down. */
export function stopAllCommands(): void {
  stopped = true;
  for (const pgid of running) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  running.clear();
}

/** Quotes one word for sh. */
export function sh(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export function runCommand(script: string, options: CommandOptions): Promise<CommandResult> {
  return run('sh', ['-c', script], script, options);
}

/** `argv[0]` run directly, found on PATH; `script` in errors is the words joined by spaces. */
export function runArgv(argv: readonly string[], options: CommandOptions): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new CommandFailedError('', 'could not start', 'empty argv'));
  return run(file, args, argv.join(' '), options);
}

function run(file: string, args: string[], script: string, options: CommandOptions): Promise<CommandResult> {
  if (stopped && !options.cleanup) {
    return Promise.reject(new CommandsStoppedError(`shutting down: not running '${script}'`));
  }
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const prompts = options.prompts ?? [];
    const child = spawn(file, args, {
      cwd: options.cwd, env: options.env ?? process.env, detached: true, stdio: [prompts.length > 0 ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const pgid = child.pid;
    if (pgid !== undefined) running.add(pgid);
    let stdout = '';
    let stderr = '';
    let prompted = 0;
    let promptFrom = 0;
    // A program gone before it read its answer: its exit status says so, not an EPIPE thrown here.
    child.stdin?.on('error', () => undefined);
    child.stdout?.on('data', (chunk: Buffer) => {
      if (stdout.length < MAX_CAPTURE) stdout += chunk.toString();
      for (let next = prompts[prompted]; next !== undefined; next = prompts[prompted]) {
        const at = stdout.indexOf(next.text, promptFrom);
        if (at < 0) return;
        prompted++;
        promptFrom = at + next.text.length;
        if (prompted < prompts.length) child.stdin?.write(next.answer());
        else child.stdin?.end(next.answer());
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => { if (stderr.length < MAX_CAPTURE) stderr += chunk.toString(); });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (pgid !== undefined) {
        try {
          process.kill(-pgid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }, options.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      if (pgid !== undefined) running.delete(pgid);
      reject(new CommandFailedError(script, 'could not start', err.message, '', { cause: err }));
    });
    child.on('close', (code, signal) => {
      const ms = performance.now() - started;
      clearTimeout(timer);
      if (pgid !== undefined) running.delete(pgid);
      if (timedOut) reject(new CommandTimeoutError(script, options.timeoutMs));
      else if (code !== 0) {
        reject(new CommandFailedError(script, signal ? `killed by ${signal}` : `exited ${code}`, stderr, stdout));
      }
      else resolve({ ms, stdout, stderr });
    });
  });
}
