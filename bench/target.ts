/**
 * What a workload runs against: a directory, the slave-side directory behind it, and how long
 * its FUSE server caches attributes in its own memory. Also the plain local-disk target.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';
import { isMounted } from './mount-table.js';
import { runCommand, sh } from './run-command.js';

export const TARGET_NAMES = ['splitbrain', 'sshfs', 'bindfs', 'local'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

/** Processes of one side of a target, by what they are (`mount`, `sshfs + ssh`). */
export interface ProcessGroup {
  label: string;
  pids: number[];
}

/**
 * The processes that serve a target's calls, besides the program making them: the FUSE side
 * (`near`) and what it talks to (`far`: the agent, sshd's session); found when asked, as children
 * (ssh, sftp-server, the change watcher) come with connections.
 */
export interface ServerProcesses {
  near: ProcessGroup;
  far?: ProcessGroup;
}

export interface Target {
  name: TargetName;
  /** Where the workloads run: the mountpoint (or the directory itself for the local disk). */
  mountPath: string;
  /** The directory the data really lands in, as the slave sees it. */
  slavePath: string;
  /** Waited out, after dropping the kernel's caches, before a cold workload. */
  userspaceCacheMs: number;
  /** Logs of the processes serving it, read for warnings after the run. */
  logs: { label: string; path: string }[];
  /** splitbrain's agent and mount processes (their memory is reported by the cluster part). */
  pids?: { agent: number; mount: number };
  /** The processes serving it (none for the local disk), for the CPU a call costs each. */
  servers?: () => ServerProcesses;
  /** Unmounts and stops what serves it before the run's cleanup would (a part done with it). */
  stop?: () => Promise<void>;
}

/** The kernel's default attribute and entry timeouts are 1 s; wait a bit more. */
export const ONE_SECOND_CACHE_MS = 1500;

/** Registers a lazy unmount; it runs before the cleanup of anything registered earlier. */
export function unmountOnCleanup(cleanup: Cleanup, mountPath: string): void {
  cleanup.add(`unmount ${mountPath}`, async () => {
    if (!(await isMounted(mountPath))) return;
    await runCommand(`fusermount -uz ${sh(mountPath)}`, { timeoutMs: 10_000, cleanup: true });
  });
}

export async function localTarget(workDir: string): Promise<Target> {
  const dir = join(workDir, 'local-disk');
  await mkdir(dir);
  return { name: 'local', mountPath: dir, slavePath: dir, userspaceCacheMs: 0, logs: [] };
}
