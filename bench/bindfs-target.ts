/** The FUSE floor: bindfs passes every call straight to a local directory, no network. */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';
import { startDaemon, waitUntil } from './daemon.js';
import { mountedYet } from './mount-table.js';
import { ONE_SECOND_CACHE_MS, unmountOnCleanup, type Target } from './target.js';

const START_TIMEOUT_MS = 15_000;

export async function startBindfs(workDir: string, cleanup: Cleanup): Promise<Target> {
  const slavePath = join(workDir, 'bindfs-slave');
  const mountPath = join(workDir, 'bindfs-mnt');
  await mkdir(slavePath);
  await mkdir(mountPath);
  const logPath = join(workDir, 'bindfs.log');
  const bindfs = startDaemon({
    label: 'bindfs', command: 'bindfs', args: ['-f', slavePath, mountPath], logPath,
  }, cleanup);
  unmountOnCleanup(cleanup, mountPath);
  await waitUntil(bindfs, `mount on ${mountPath}`, START_TIMEOUT_MS, () => mountedYet(mountPath));
  return {
    name: 'bindfs', mountPath, slavePath, userspaceCacheMs: ONE_SECOND_CACHE_MS,
    logs: [{ label: 'bindfs', path: logPath }],
    servers: () => ({ near: { label: 'bindfs', pids: [bindfs.pid] } }),
  };
}
