/**
 * Checks shared by the exec and bridge suites: a signal sent to the master-side process must
 * reach the remote one.
 */
import assert from 'node:assert/strict';
import type { SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { spawnCollecting, stopProcess, waitFor } from './processes.js';

/**
 * Runs `command ...args sh -c <trap>` (a remote shell that writes `flagPath` and exits 3 on
 * SIGTERM), sends SIGTERM to the local process once the remote shell runs, and asserts the
 * remote trap ran: exit status 3 and the flag file written on the slave.
 */
export async function assertSigtermReachesRemote(command: string, args: string[], flagPath: string, options: SpawnOptions = {}): Promise<void> {
  const script = `trap 'echo got > ${flagPath}; exit 3' TERM; echo ready; while :; do sleep 0.1; done`;
  const proc = spawnCollecting(command, [...args, 'sh', '-c', script], options);
  try {
    await waitFor('the remote shell to start', () => proc.stdout().includes('ready'), 15_000);
    const exited = once(proc.child, 'exit');
    proc.child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 3);
    assert.equal(await readFile(flagPath, 'utf8'), 'got\n');
  } finally {
    await stopProcess(proc.child, 'SIGKILL');
  }
}
