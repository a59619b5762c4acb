/**
 * `splitbrain exec`: one command on the slave with this process's stdin, stdout and stderr,
 * its signals and, with a pty, its terminal: like `ssh host cmd`.
 *
 *   our stdin --> slave process --> our stdout / stderr;  our signals --> slave process
 */
import type { Logger } from 'pino';
import { AgentClient, chooseAgent } from '../transport/agent-client.js';
import { connectBus } from '../transport/bus.js';
import { cutMessage, exitStatusOf, failureStatus, signalNumber } from './exit-status.js';
import { ProcessClient, type ForwardedSignal, type RemoteProcess } from './remote-process.js';
import { StdinWriter } from './stdin-writer.js';

export interface ExecOptions {
  natsUrl: string;
  agentId?: string;
  argv: string[];
  /** A slave path. */
  cwd: string;
  env: Record<string, string>;
  /** Ask for a pseudo-terminal (stdin must be a terminal). */
  tty: boolean;
  /** Do not read our stdin (the process gets end of input at once), as ssh -n. */
  noStdin: boolean;
  /** Run as this user and group on the slave (needs a root agent). */
  uid?: number;
  gid?: number;
  /** How long a request waits for an unreachable agent (default 60 s; 0: at once). */
  slaveWaitMs?: number;
  log: Logger;
}

const REQUEST_TIMEOUT_MS = 15_000;
/** How long a command whose reader left waits for the agent to take its hang-up. */
const HANGUP_WAIT_MS = 2000;
const FORWARDED: ForwardedSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/** Runs the command and returns the exit status this process should exit with. */
export async function runExec(options: ExecOptions): Promise<number> {
  const { log } = options;
  const bus = await connectBus({ url: options.natsUrl, name: 'splitbrain-exec', log: log.child({ component: 'bus' }) });
  let agentId = options.agentId ?? '?';
  const cleanups: (() => void)[] = [];
  /** Undoes what was set up, the last first (once: the list is emptied). */
  const cleanUp = (): void => {
    for (const cleanup of cleanups.reverse()) cleanup();
    cleanups.length = 0;
  };
  try {
    agentId = options.agentId ?? await chooseAgent(bus);
    const client = new AgentClient(bus, agentId, { timeoutMs: REQUEST_TIMEOUT_MS, slaveWaitMs: options.slaveWaitMs, log });
    client.helloOnReconnect();
    const procs = new ProcessClient(client, log.child({ component: 'proc' }));
    cleanups.push(() => procs.close());
    const tty = options.tty && process.stdin.isTTY === true;
    const env = { ...options.env };
    if (tty) env.TERM ??= process.env.TERM ?? 'xterm';
    const output = new OutputWrites();
    let proc: RemoteProcess | undefined;
    // Signals are ours to forward before the spawn's answer is: the process's first output can
    // reach our stdout first, and a signal sent on seeing it (a test's "ready") killed this
    // process instead of reaching the remote one. One that comes before any output still ends
    // us at once, as before (a spawn waiting for an unreachable slave); one after waits for the
    // answer and is forwarded then.
    let running = false;
    const early: ForwardedSignal[] = [];
    for (const signal of FORWARDED) {
      const forward = () => {
        if (proc) void proc.signal(signal);
        else if (running) early.push(signal);
        else {
          cleanUp();
          process.kill(process.pid, signal); // no handler now: the signal's own action
        }
      };
      process.on(signal, forward);
      cleanups.push(() => process.off(signal, forward));
    }
    try {
      proc = await procs.spawn({
        argv: options.argv, env, cwd: options.cwd, uid: options.uid, gid: options.gid,
        pty: tty ? { rows: process.stdout.rows ?? 24, cols: process.stdout.columns ?? 80 } : null,
      }, {
        stdout: (data, written) => { running = true; output.write(process.stdout, data, written); },
        stderr: (data, written) => { running = true; output.write(process.stderr, data, written); },
      });
    } catch (err) {
      const failure = failureStatus(err, agentId);
      process.stderr.write(`splitbrain: ${failure.message}\n`);
      return failure.status;
    }
    const started = proc;
    for (const signal of early.splice(0)) void started.signal(signal);
    // Our reader left (`| head -1`): hang up, so the process's writes fail as they would into
    // that pipe, and exit as a process killed by SIGPIPE.
    let brokenPipe: Promise<void> | undefined;
    output.onBroken = () => {
      brokenPipe = started.abandon();
    };
    if (tty) {
      process.stdin.setRawMode(true);
      cleanups.push(() => process.stdin.setRawMode(false));
    }
    if (tty) {
      // Node re-reads the terminal's size on SIGWINCH, then emits 'resize'.
      const resize = () => started.resize(process.stdout.rows ?? 24, process.stdout.columns ?? 80);
      process.stdout.on('resize', resize);
      cleanups.push(() => process.stdout.off('resize', resize));
    } else {
      const winch = () => started.signal('SIGWINCH');
      process.on('SIGWINCH', winch);
      cleanups.push(() => process.off('SIGWINCH', winch));
    }
    cleanups.push(pumpStdin(started, options.noStdin, log));
    try {
      const exit = await started.exited;
      // Writes to a pipe are asynchronous: exiting now would cut the output short.
      await output.drained();
      if (exit.cut !== undefined) process.stderr.write(`splitbrain: ${cutMessage(exit.cut, options.argv[0] ?? '', agentId)}\n`);
      return exitStatusOf(exit);
    } catch (err) {
      if (brokenPipe) {
        // Exiting at once could close the bus before the hang-up left: then only the agent's
        // lease (5 s) would end the process.
        await Promise.race([brokenPipe, new Promise((resolve) => setTimeout(resolve, HANGUP_WAIT_MS).unref())]);
        return 128 + (signalNumber('SIGPIPE') ?? 13);
      }
      const failure = failureStatus(err, agentId);
      process.stderr.write(`splitbrain: ${failure.message}\n`);
      return failure.status;
    }
  } finally {
    cleanUp();
    await bus.close();
  }
}

/** Output written to our stdout and stderr, and a way to wait until all of it is out. */
class OutputWrites {
  private pending = 0;
  private waiters: (() => void)[] = [];
  private broken = false;
  /** Called once when our stdout's reader is gone (EPIPE). */
  onBroken: () => void = () => undefined;

  constructor() {
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      if (!this.broken) this.onBroken();
      this.broken = true;
    });
  }

  write(stream: NodeJS.WriteStream, data: Buffer, written: () => void): void {
    if (this.broken && stream === process.stdout) {
      written(); // nobody reads it any more
      return;
    }
    this.pending++;
    stream.write(data, () => {
      written();
      if (--this.pending === 0) for (const wake of this.waiters.splice(0)) wake();
    });
  }

  async drained(): Promise<void> {
    if (this.pending > 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }
}

/** our stdin --> the process (batched, bounded: see StdinWriter). Returns its cleanup. */
function pumpStdin(proc: RemoteProcess, noStdin: boolean, log: Logger): () => void {
  const stdin = process.stdin;
  let stopped = false;
  const stop = () => {
    stopped = true;
    stdin.off('data', onData);
    stdin.pause();
  };
  const writer = new StdinWriter(proc, {
    onDrain: () => { if (!stopped) stdin.resume(); },
    // The process closed its stdin (EPIPE) or is gone: stop reading ours, as ssh does.
    onClosed: (err) => {
      log.debug({ err }, 'stdin not delivered');
      stop();
    },
  });
  const onData = (chunk: Buffer) => {
    if (!writer.write(chunk)) stdin.pause();
  };
  if (noStdin) {
    writer.end();
    return () => undefined;
  }
  stdin.on('data', onData);
  stdin.once('end', () => writer.end());
  return stop;
}
