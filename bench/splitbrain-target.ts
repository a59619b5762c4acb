/**
 * The system under test: `splitbrain agent` serving a temp dir, and `splitbrain mount -f` on
 * another, both as real CLI processes; the mount tells us it is ready on fd 3.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseMountOptions } from '../mount/mount-options.js';
import { CLI, startAgent } from './agent-daemon.js';
import type { Cleanup } from './cleanup.js';
import { DaemonStartError, logTail, readyReport, startDaemon } from './daemon.js';
import { isMounted } from './mount-table.js';
import { descendantsOf } from './process-cpu.js';
import { runCommand, sh } from './run-command.js';
import { unmountOnCleanup, type Target } from './target.js';
import { MOUNT_NODE_FLAGS } from '../cli/node-flags.js';

const AGENT_ID = 'bench';
const MOUNT_TIMEOUT_MS = 30_000;
/** Past the mount's own cache lifetime, so a cold run really asks the agent. */
const CACHE_MARGIN_MS = 500;

/** How long the mount keeps attributes and names in its memory with these options. */
function userspaceCacheMs(mountOptions: string): number {
  const { cache } = parseMountOptions(mountOptions ? [mountOptions] : [], AGENT_ID);
  return Math.max(cache.attrTtlMs, cache.entryTtlMs, cache.negativeTtlMs) + CACHE_MARGIN_MS;
}

/**
 * `agentUrl`: where the agent connects (default: the mount's `natsUrl`; a leaf node's, for the
 * cluster part); `agentArgs`: more of the agent's options (where it offers links, for the delayed part).
 */
export async function startSplitbrain(
  workDir: string, natsUrl: string, mountOptions: string, cleanup: Cleanup, agentId = AGENT_ID, agentUrl = natsUrl, agentArgs: string[] = [],
): Promise<Target> {
  const cacheMs = userspaceCacheMs(mountOptions);
  const slavePath = join(workDir, `${agentId}-slave`);
  const mountPath = join(workDir, `${agentId}-mnt`);
  await mkdir(slavePath);
  await mkdir(mountPath);
  const agentLog = join(workDir, `${agentId}-agent.log`);
  const agent = await startAgent({ label: agentId === AGENT_ID ? 'splitbrain agent' : `agent ${agentId}`, natsUrl: agentUrl, agentId, slavePath, logPath: agentLog, args: agentArgs }, cleanup);

  const mountLog = join(workDir, `${agentId}-mount.log`);
  const mount = startDaemon({
    label: 'splitbrain mount', command: process.execPath, logPath: mountLog, readyPipe: true,
    // With the flags the background `splitbrain mount` gets (cli/node-flags.ts).
    args: [...MOUNT_NODE_FLAGS, CLI, 'mount', natsUrl, mountPath, '--agent', agentId, '-f', ...(mountOptions ? ['-o', mountOptions] : [])],
  }, cleanup);
  unmountOnCleanup(cleanup, mountPath);
  const report = await readyReport(mount, MOUNT_TIMEOUT_MS);
  if (!report.ok) {
    throw new DaemonStartError(`splitbrain mount did not start: ${report.message}: ${await logTail(mount)}`);
  }
  if (!(await isMounted(mountPath))) {
    throw new DaemonStartError(`splitbrain mount said ready but ${mountPath} is not mounted`);
  }
  return {
    name: 'splitbrain', mountPath, slavePath, userspaceCacheMs: cacheMs,
    logs: [{ label: 'splitbrain agent', path: agentLog }, { label: 'splitbrain mount', path: mountLog }],
    pids: { agent: agent.pid, mount: mount.pid },
    servers: () => ({
      near: { label: 'mount', pids: [mount.pid] },
      far: { label: 'agent + watcher', pids: [agent.pid, ...descendantsOf(agent.pid)] },
    }),
    stop: async () => {
      if (await isMounted(mountPath)) await runCommand(`fusermount -u ${sh(mountPath)}`, { timeoutMs: 10_000, cleanup: true });
      await mount.stop();
      await agent.stop();
    },
  };
}
