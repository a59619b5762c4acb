/**
 * The device bench's splitbrain side: an agent of its own (its own id and temp root, on the run's
 * nats-server, serving this machine's /dev as its default --dev-root) and `splitbrain mount
 * --devices -f` on a temp dir, both real CLI processes; the mount tells us it is ready on fd 3.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, startAgent } from './agent-daemon.js';
import type { Cleanup } from './cleanup.js';
import { DaemonStartError, logTail, readyReport, startDaemon, type Daemon } from './daemon.js';
import { isMounted } from './mount-table.js';
import { unmountOnCleanup } from './target.js';
import { MOUNT_NODE_FLAGS } from '../cli/node-flags.js';

const AGENT_ID = 'bench-device';
const MOUNT_TIMEOUT_MS = 30_000;
/** The agent's --dev-root: the default, so the boards' terminals are in it. */
export const SLAVE_DEV_ROOT = '/dev';

export interface DeviceMount {
  mountPath: string;
  /** In the order they were started; stopped once the device bench is done. */
  daemons: Daemon[];
  logs: { label: string; path: string }[];
}

export async function startDeviceMount(workDir: string, natsUrl: string, cleanup: Cleanup): Promise<DeviceMount> {
  const slavePath = join(workDir, 'device-slave');
  const mountPath = join(workDir, 'device-mnt');
  await mkdir(slavePath);
  await mkdir(mountPath);
  const agentLog = join(workDir, 'device-agent.log');
  const agent = await startAgent({ label: 'device agent', natsUrl, agentId: AGENT_ID, slavePath, logPath: agentLog }, cleanup);
  const logs = [{ label: 'device agent', path: agentLog }];

  const mountLog = join(workDir, 'device-mount.log');
  const mount = startDaemon({
    label: 'splitbrain device mount', command: process.execPath, logPath: mountLog, readyPipe: true,
    args: [...MOUNT_NODE_FLAGS, CLI, 'mount', natsUrl, mountPath, '--agent', AGENT_ID, '--devices', '-f'],
  }, cleanup);
  unmountOnCleanup(cleanup, mountPath);
  const daemons = [agent, mount];
  try {
    const report = await readyReport(mount, MOUNT_TIMEOUT_MS);
    if (!report.ok) {
      throw new DaemonStartError(`splitbrain mount --devices did not start: ${report.message}: ${await logTail(mount)}`);
    }
    if (!(await isMounted(mountPath))) {
      throw new DaemonStartError(`splitbrain mount --devices said ready but ${mountPath} is not mounted`);
    }
  } catch (err) {
    for (const daemon of daemons.reverse()) await daemon.stop();
    throw err;
  }
  return { mountPath, daemons, logs: [...logs, { label: 'splitbrain device mount', path: mountLog }] };
}
