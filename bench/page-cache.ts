/**
 * Making a workload cold: write back dirty pages, drop the kernel's page, dentry and inode caches
 * (every filesystem's, FUSE mounts' and the dirs behind them alike), then wait out the caches
 * the FUSE servers keep in their own memory, which the kernel cannot drop.
 */
import { writeFile } from 'node:fs/promises';
import { runCommand } from './run-command.js';

const SYNC_TIMEOUT_MS = 120_000;

export class CacheDropError extends Error {
  override name = 'CacheDropError';
}

export async function dropCaches(): Promise<void> {
  await runCommand('sync', { timeoutMs: SYNC_TIMEOUT_MS });
  try {
    await writeFile('/proc/sys/vm/drop_caches', '3\n');
  } catch (cause) {
    throw new CacheDropError(`cannot drop the page cache (run as root): ${(cause as Error).message}`, { cause });
  }
}

export async function goCold(userspaceCacheMs: number): Promise<void> {
  await dropCaches();
  if (userspaceCacheMs > 0) await new Promise((resolve) => setTimeout(resolve, userspaceCacheMs));
}
