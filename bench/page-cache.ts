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

/**
 * Before a workload that makes many files: the cost of the creates it times must not depend on
 * what the bench deleted in the minutes before. ext4 without a journal (this machine's root
 * filesystem) does not give out an inode freed within the last minute (six while its inode table
 * block is not written back): each allocation scans past them in the inode table's cached
 * buffers (`recently_deleted`), and after an untar's and a git's worth of deletions a create of
 * an empty file cost 700 µs of kernel time here instead of 70, whichever target made it. Written
 * back and dropped, those buffers are not looked at (the kernel takes an inode whose block is not
 * cached as written out long ago), and the next creates cost what they do on a quiet disk.
 */
export async function forgetRecentDeletions(): Promise<void> {
  await dropCaches();
}

export async function goCold(userspaceCacheMs: number): Promise<void> {
  await dropCaches();
  if (userspaceCacheMs > 0) await new Promise((resolve) => setTimeout(resolve, userspaceCacheMs));
}
