/**
 * flock(2) from a test: a process of ours holding a lock, and flock(1)'s try of one.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { run, stopProcess, waitFor } from './processes.js';

/** A process of ours holding a flock(2) lock until `release()` closes its stdin. */
interface Holder {
  readonly child: ChildProcess;
  release(): Promise<void>;
}

const HOLD = [
  'import fcntl, sys',
  'f = open(sys.argv[1], "rb")',
  'fcntl.flock(f, fcntl.LOCK_EX if sys.argv[2] == "ex" else fcntl.LOCK_SH)',
  'print("held", flush=True)',
  'sys.stdin.read()',
].join('\n');

/** Starts a holder of lock `kind` on `path`; resolves once it has it. */
export async function hold(path: string, kind: 'ex' | 'sh'): Promise<Holder> {
  const child = spawn('python3', ['-c', HOLD, path, kind], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  try {
    await waitFor(`a ${kind} lock on ${path}`, () => out.includes('held\n') || child.exitCode !== null, 20_000);
    assert.equal(out, 'held\n', `the holder exited ${child.exitCode}`);
  } catch (err) {
    if (child.exitCode === null && child.signalCode === null) await stopProcess(child, 'SIGKILL');
    throw err;
  }
  return {
    child,
    async release() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.stdin?.end(); // the holder reads to the end, then exits: its file closes, the lock goes
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      if (child.exitCode === null && child.signalCode === null) await stopProcess(child, 'SIGKILL');
    },
  };
}

/** flock(1)'s exit status for a try (`-n`) of `kind` on `path`: 0 got it, 1 held elsewhere. */
export async function tryLock(path: string, kind: 'ex' | 'sh'): Promise<number | null> {
  return (await run('flock', ['-n', kind === 'ex' ? '-x' : '-s', path, 'true'], { timeoutMs: 20_000 })).code;
}
