/**
 * `splitbrain sidecar`, the master-side container's entrypoint: everything a test needs of one
 * slave under one shared directory, which test containers bind-mount:
 *
 *   <dir>/slave        the slave's filesystem (FUSE)
 *   <dir>/dev          the slave's devices (FUSE, direct I/O)
 *   <dir>/bin          the shim and one link per bridged command (first on the test's PATH)
 *   <dir>/bridge.sock  the spawn bridge
 *   <dir>/health.json  present while all of it is up (what `splitbrain health` checks)
 *
 * A bridged command clears the filesystem mount's cache when it ends, so the test sees at once
 * what the command changed on the slave.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { mountSlave, type MountedSlave } from '../mount/mount.js';
import { startBridgeService, type BridgeServiceOptions, type RunningBridge } from './bridge-service.js';

export interface SidecarOptions {
  natsUrl: string;
  agentId?: string;
  /** The shared directory. */
  dir: string;
  /** Where the test sees `<dir>/slave` (its cwd there is translated for bridged commands). */
  slaveSeenAt?: string;
  /** sshfs-style -o words for the filesystem mount. */
  mountOptions: string[];
  bridge: Pick<BridgeServiceOptions, 'commands' | 'bridgeAll' | 'keep' | 'defaultCwd' | 'envNames' | 'envPrefixes'>;
  log: Logger;
}

export interface HealthReport {
  healthy: true;
  agentId: string;
  hostname: string;
  bootId: string;
  since: string;
  pid: number;
}

export interface RunningSidecar {
  readonly health: HealthReport;
  stop(): Promise<void>;
}

export const HEALTH_FILE = 'health.json';

export async function startSidecar(options: SidecarOptions): Promise<RunningSidecar> {
  const { dir, log } = options;
  const paths = { slave: join(dir, 'slave'), dev: join(dir, 'dev'), bin: join(dir, 'bin'), socket: join(dir, 'bridge.sock') };
  await rm(join(dir, HEALTH_FILE), { force: true });
  for (const path of [paths.slave, paths.dev, paths.bin]) await mkdir(path, { recursive: true });
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => log.warn({ err }, 'sidecar shutdown step failed'));
  };
  try {
    const files: MountedSlave = await mountSlave({
      natsUrl: options.natsUrl, agentId: options.agentId, mountPath: paths.slave, options: options.mountOptions, log,
    });
    stops.push(() => files.unmount());
    const agentId = files.hello.agentId;
    const devices = await mountSlave({ natsUrl: options.natsUrl, agentId, mountPath: paths.dev, options: [], devices: true, log });
    stops.push(() => devices.unmount());
    const bridge: RunningBridge = await startBridgeService({
      ...options.bridge, natsUrl: options.natsUrl, agentId, socketPath: paths.socket, shimDir: paths.bin,
      slaveMount: options.slaveSeenAt ?? paths.slave, log, afterCommand: () => files.clearCache(),
    });
    stops.push(() => bridge.stop());
    const health: HealthReport = {
      healthy: true, agentId, hostname: files.hello.hostname, bootId: files.hello.bootId,
      since: new Date().toISOString(), pid: process.pid,
    };
    await writeFile(join(dir, HEALTH_FILE), `${JSON.stringify(health)}\n`);
    stops.push(() => rm(join(dir, HEALTH_FILE), { force: true }));
    log.info({ dir, agentId, hostname: health.hostname, commands: bridge.commands.length }, 'sidecar ready');
    return { health, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
