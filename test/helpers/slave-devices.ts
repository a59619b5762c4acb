/**
 * A slave's devices for the terminal tests: a dev root of the test's own (the agent's
 * --dev-root) holding the host's /dev/pts (bound), a FIFO, and a board (test/fixtures/board.py,
 * a pty pair whose device end is linked at <devRoot>/ttyBOARD), so each test makes and removes
 * its own boards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMounted } from '../../mount/mount-watch.js';
import { run, waitFor } from './processes.js';

const BOARD = new URL('../../../test/fixtures/board.py', import.meta.url).pathname;

export interface Board {
  child: ChildProcess;
  /** The device end's path on the slave (this machine's /dev/pts/N). */
  device: string;
}

/** A board whose device end is linked at `link`; `heard`: a file it appends what it hears to. */
export async function startBoard(link: string, heard?: string): Promise<Board> {
  const child = spawn('python3', [BOARD, link, ...(heard ? [heard] : [])], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  await waitFor('the board', () => out.includes('\n') || child.exitCode !== null, 10_000);
  return { child, device: out.trim() };
}

/** The board goes away as an unplugged adapter does: its end of the pair closes (killed if it lingers). */
export async function unplug(board: Board): Promise<void> {
  if (board.child.exitCode !== null) return;
  const exited = once(board.child, 'exit');
  board.child.stdin?.end();
  const timer = setTimeout(() => board.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** A new dev root: `pts` (the host's /dev/pts, bound) and `fifo`. */
export async function makeDevRoot(): Promise<string> {
  const devRoot = await mkdtemp(join(tmpdir(), 'splitbrain-slave-dev-'));
  await mkdir(join(devRoot, 'pts'));
  await run('mount', ['--bind', '/dev/pts', join(devRoot, 'pts')]);
  await run('mkfifo', [join(devRoot, 'fifo')]);
  return devRoot;
}

export async function removeDevRoot(devRoot: string | undefined): Promise<void> {
  if (!devRoot) return;
  if (await isMounted(join(devRoot, 'pts'))) await run('umount', ['-l', join(devRoot, 'pts')]);
  await rm(devRoot, { recursive: true, force: true });
}
