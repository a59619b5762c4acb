/**
 * The reference: sshfs over loopback to the bench's throwaway sshd (sshd.ts). sshfs runs with
 * its default caching.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';
import { startDaemon, waitUntil } from './daemon.js';
import { mountedYet } from './mount-table.js';
import { descendantsOf } from './process-cpu.js';
import { sshClientOptions, type Sshd } from './sshd.js';
import { unmountOnCleanup, type Target } from './target.js';

const START_TIMEOUT_MS = 15_000;
/** sshfs keeps directory entries and attributes for dcache_timeout, 20 s by default. */
const SSHFS_DCACHE_MS = 21_000;

/**
 * `via`: reach sshd through this port instead (the delayed link's proxy), with its own dirs and
 * log named by `label`.
 */
export async function startSshfs(workDir: string, sshd: Sshd, cleanup: Cleanup, via?: { port: number; label: string }): Promise<Target> {
  const label = via?.label ?? 'sshfs';
  const slavePath = join(workDir, `${label}-slave`);
  const mountPath = join(workDir, `${label}-mnt`);
  await Promise.all([mkdir(slavePath), mkdir(mountPath)]);
  const sshfsLog = join(workDir, `${label}.log`);
  const sshfs = startDaemon({
    label: 'sshfs', command: 'sshfs', logPath: sshfsLog,
    args: ['-f', '-o', [...sshClientOptions(sshd), `port=${via?.port ?? sshd.port}`].join(','), `root@127.0.0.1:${slavePath}`, mountPath],
  }, cleanup);
  unmountOnCleanup(cleanup, mountPath);
  await waitUntil(sshfs, `mount on ${mountPath}`, START_TIMEOUT_MS, () => mountedYet(mountPath));
  return {
    name: 'sshfs', mountPath, slavePath, userspaceCacheMs: SSHFS_DCACHE_MS,
    logs: [{ label, path: sshfsLog }],
    // sshd's children are the sessions of every sshfs of the run: the others idle meanwhile.
    servers: () => ({
      near: { label: 'sshfs + ssh', pids: [sshfs.pid, ...descendantsOf(sshfs.pid)] },
      far: { label: 'sshd + sftp-server', pids: descendantsOf(sshd.daemon.pid) },
    }),
  };
}
