/**
 * flock(2) from a test: a process of ours holding a lock, flock(1)'s try of one, and the
 * kernel's list of those held on this machine.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
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

/**
 * Whether a flock(2) lock is held on the local file `path`, read from /proc/locks: unlike a try,
 * the reading takes no lock, so it cannot win one that is about to be taken again.
 */
export async function flockHeld(path: string): Promise<boolean> {
  const { dev, ino } = await stat(path, { bigint: true });
  // glibc's dev_t encoding; /proc/locks writes major and minor in hex, the inode in decimal.
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const file = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${ino}`;
  // "1: FLOCK  ADVISORY  WRITE 4242 00:05:6 0 EOF"; a waiter's line starts "1: -> FLOCK".
  return (await readFile('/proc/locks', 'utf8')).split('\n')
    .some((line) => { const f = line.trim().split(/\s+/); return f[1] === 'FLOCK' && f[5] === file; });
}
