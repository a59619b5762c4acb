/**
 * `splitbrain exec`: one command on the slave with this process's stdin, stdout and stderr,
 * its signals and, with a pty, its terminal: like `ssh host cmd`.
 *
 *   our stdin --> slave process --> our stdout / stderr;  our signals --> slave process
 */
import type { Logger } from 'pino';
import { AgentClient, chooseAgent } from '../transport/agent-client.js';
import { connectBus } from '../transport/bus.js';
import { exitStatusOf, failureStatus } from './exit-status.js';
import { ProcessClient, type ForwardedSignal, type RemoteProcess } from './remote-process.js';

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
  log: Logger;
}

const REQUEST_TIMEOUT_MS = 15_000;
/** At most this much of our stdin on its way to the process: memory stays bounded. */
const STDIN_IN_FLIGHT = 2;
const FORWARDED: ForwardedSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/** Runs the command and returns the exit status this process should exit with. */
export async function runExec(options: ExecOptions): Promise<number> {
  const { log } = options;
  const bus = await connectBus({ url: options.natsUrl, name: 'splitbrain-exec', log: log.child({ component: 'bus' }) });
  let agentId = options.agentId ?? '?';
  const cleanups: (() => void)[] = [];
  try {
    agentId = options.agentId ?? await chooseAgent(bus);
    const client = new AgentClient(bus, agentId, { timeoutMs: REQUEST_TIMEOUT_MS, log });
    const procs = new ProcessClient(client, log.child({ component: 'proc' }));
    cleanups.push(() => procs.close());
    const tty = options.tty && process.stdin.isTTY === true;
    const env = { ...options.env };
    if (tty) env.TERM ??= process.env.TERM ?? 'xterm';
    let proc: RemoteProcess;
    try {
      proc = await procs.spawn({
        argv: options.argv, env, cwd: options.cwd,
        pty: tty ? { rows: process.stdout.rows ?? 24, cols: process.stdout.columns ?? 80 } : null,
      }, {
        stdout: (data, written) => { process.stdout.write(data, () => written()); },
        stderr: (data, written) => { process.stderr.write(data, () => written()); },
      });
    } catch (err) {
      const failure = failureStatus(err, agentId);
      process.stderr.write(`splitbrain: ${failure.message}\n`);
      return failure.status;
    }
    if (tty) {
      process.stdin.setRawMode(true);
      cleanups.push(() => process.stdin.setRawMode(false));
    }
    for (const signal of FORWARDED) {
      const forward = () => proc.signal(signal);
      process.on(signal, forward);
      cleanups.push(() => process.off(signal, forward));
    }
    const winch = () => (tty ? proc.resize(process.stdout.rows ?? 24, process.stdout.columns ?? 80) : proc.signal('SIGWINCH'));
    process.on('SIGWINCH', winch);
    cleanups.push(() => process.off('SIGWINCH', winch));
    cleanups.push(pumpStdin(proc, options.noStdin, log));
    try {
      return exitStatusOf(await proc.exited);
    } catch (err) {
      const failure = failureStatus(err, agentId);
      process.stderr.write(`splitbrain: ${failure.message}\n`);
      return failure.status;
    }
  } finally {
    for (const cleanup of cleanups.reverse()) cleanup();
    await bus.close();
  }
}

/** our stdin --> the process, a few chunks in flight at most. Returns its cleanup. */
function pumpStdin(proc: RemoteProcess, noStdin: boolean, log: Logger): () => void {
  const stdin = process.stdin;
  if (noStdin) {
    proc.endStdin().catch((err: unknown) => log.debug({ err }, 'closing stdin failed'));
    return () => undefined;
  }
  let inFlight = 0;
  let stopped = false;
  const stop = () => {
    stopped = true;
    stdin.off('data', onData);
    stdin.pause();
  };
  const onData = (chunk: Buffer) => {
    if (++inFlight >= STDIN_IN_FLIGHT) stdin.pause();
    proc.writeStdin(chunk).then(() => {
      if (--inFlight < STDIN_IN_FLIGHT && !stopped) stdin.resume();
    }, (err: unknown) => {
      // The process closed its stdin (EPIPE) or is gone: stop reading ours, as ssh does.
      log.debug({ err }, 'stdin not delivered');
      stop();
    });
  };
  stdin.on('data', onData);
  stdin.once('end', () => {
    if (stopped) return;
    proc.endStdin().catch((err: unknown) => log.debug({ err }, 'closing stdin failed'));
  });
  return stop;
}
