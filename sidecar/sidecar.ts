/**
 * `splitbrain sidecar`, the master-side container's entrypoint: everything a test needs of one
 * slave under one shared directory, which test containers bind-mount:
 *
 *   <dir>/slave        the slave's filesystem (FUSE)
 *   <dir>/slave/dev    the slave's devices (FUSE, direct I/O), over the slave's own /dev, so one
 *                      bind of <dir>/slave shows a test both at the slave's paths. Where the
 *                      export has no dev/ directory: <dir>/dev.
 *   <dir>/map/<path>   for each --map: the slave's <path> (a directory, file or device), for a test
 *                      container to bind where it wants it (a bind made here, after the mount,
 *                      reaches the test container by propagation; a bind of <dir>/slave/<path>
 *                      made when the container was created would show the empty directory under
 *                      the mount). A slave terminal's is its pseudo-terminal (<dir>/pts/N) itself
 *   <dir>/pts          a devpts instance of the sidecar's: the pseudo-terminals the device mount
 *                      relays the slave's terminals through (its links lead there), which test
 *                      containers see at the same path
 *   <dir>/bin          the shim and one link per bridged command (first on the test's PATH)
 *   <dir>/fallback     with --bridge-missing: a link per command on the slave's PATH (last on
 *                      the test's PATH: the image's own commands come first)
 *   <dir>/python       with --python-fallback: a sitecustomize.py that imports what the test's
 *                      Python lacks from the slave (first on the test's PYTHONPATH; empty without)
 *   <dir>/bridge.sock  the spawn bridge
 *   <dir>/health.json  present while all of it is up (what `splitbrain health` checks)
 *
 * A bridged command clears the filesystem mount's cache when it ends, so the test sees at once
 * what the command changed on the slave.
 */
import { lstat, mkdir, readlink, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Logger } from 'pino';
import { mountSlave, type MountedSlave } from '../mount/mount.js';
import { HEALTH_FILE, type HealthReport } from './health.js';
import { startBridgeService, type BridgeServiceOptions, type RunningBridge } from './bridge-service.js';
import { fillShimDir } from './shim-dir.js';
import { systemCommand } from './system-command.js';

export interface SidecarOptions {
  natsUrl: string;
  agentId?: string;
  /** The shared directory. */
  dir: string;
  /** Where the test sees `<dir>/slave` (its cwd there is translated for bridged commands). */
  slaveSeenAt?: string;
  /** sshfs-style -o words for the filesystem mount. */
  mountOptions: string[];
  /** How long an operation waits for an unreachable agent (default 60 s; 0: at once). */
  slaveWaitMs?: number;
  /** Slave paths to offer under <dir>/map (absolute). */
  maps?: string[];
  /**
   * Mounts the slave's devices (as `splitbrain mount --devices`) in another process: a FUSE
   * mount on a directory of our own files mount cannot be made from this process, whose event
   * loop must answer the kernel's lookup of that directory while the mount is made.
   */
  mountDevices(at: string, agentId: string, seenAt: string, ptys: string | undefined): Promise<{ stop(): Promise<void>; exited: Promise<void> }>;
  bridge: Pick<BridgeServiceOptions, 'commands' | 'bridgeAll' | 'bridgeMissing' | 'keep' | 'defaultCwd' | 'envNames' | 'envPrefixes' | 'execUser' | 'slaveWaitMs'>;
  /** Python modules the test lacks come from the slave (<dir>/python). */
  pythonFallback?: boolean;
  log: Logger;
}


export interface RunningSidecar {
  readonly health: HealthReport;
  stop(): Promise<void>;
}


export async function startSidecar(options: SidecarOptions): Promise<RunningSidecar> {
  const { dir, log } = options;
  const paths = {
    slave: join(dir, 'slave'), bin: join(dir, 'bin'), fallback: join(dir, 'fallback'), python: join(dir, 'python'),
    socket: join(dir, 'bridge.sock'), pts: join(dir, 'pts'),
  };
  const maps = (options.maps ?? []).map((slavePath) => {
    const clean = posix.normalize(`/${slavePath}`);
    if (clean === '/') throw new Error(`--map ${slavePath}: map a path below /; the slave's root is ${paths.slave}`);
    return { slavePath: clean, at: join(dir, 'map', clean) };
  });
  await rm(join(dir, HEALTH_FILE), { force: true });
  // fallback/ and python/ always exist (empty when off): the test's PATH and PYTHONPATH name them.
  for (const path of [paths.slave, paths.bin, paths.fallback, paths.python]) await mkdir(path, { recursive: true });
  // What an earlier run with them left must not act now.
  if (!options.bridge.bridgeMissing) await fillShimDir(paths.fallback, []);
  if (!options.pythonFallback) {
    for (const name of ['sitecustomize.py', 'slave-path.json']) await rm(join(paths.python, name), { force: true });
  }
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => log.warn({ err }, 'sidecar shutdown step failed'));
  };
  try {
    // Absolute link targets are shown, and stored, by where the test sees them (symlink-view.ts).
    const slaveSeenAt = options.slaveSeenAt ?? paths.slave;
    const files: MountedSlave = await mountSlave({
      natsUrl: options.natsUrl, agentId: options.agentId, mountPath: paths.slave,
      options: [`seen_at=${slaveSeenAt}`, ...options.mountOptions],
      slaveWaitMs: options.slaveWaitMs, log,
    });
    stops.push(() => files.unmount());
    const agentId = files.hello.agentId;
    const devicesAt = await isDirectory(join(paths.slave, 'dev')) ? join(paths.slave, 'dev') : join(dir, 'dev');
    await mkdir(devicesAt, { recursive: true });
    // Test containers see <dir>/slave at slaveSeenAt, and <dir> itself at the same path.
    const devicesSeenAt = devicesAt === join(paths.slave, 'dev') ? posix.join(slaveSeenAt, 'dev') : devicesAt;
    const ptys = await mountPtys(paths.pts, log);
    if (ptys) stops.push(() => systemCommand('umount', ['-l', paths.pts]));
    const devices = await options.mountDevices(devicesAt, agentId, devicesSeenAt, ptys);
    stops.push(() => devices.stop());
    for (const map of maps) {
      // The slave's /dev/X is the device mount's X, wherever that sits (<dir>/dev for an export without dev/).
      const inDev = map.slavePath === '/dev' || map.slavePath.startsWith('/dev/');
      const source = inDev ? join(devicesAt, map.slavePath.slice('/dev'.length)) : join(paths.slave, map.slavePath);
      await bindMap({ ...map, source }, { at: slaveSeenAt, here: paths.slave });
      stops.push(() => systemCommand('umount', ['-l', map.at]));
    }
    const bridge: RunningBridge = await startBridgeService({
      ...options.bridge, natsUrl: options.natsUrl, agentId, socketPath: paths.socket, shimDir: paths.bin, fallbackDir: paths.fallback,
      pythonDir: options.pythonFallback ? paths.python : undefined,
      slaveMount: slaveSeenAt, log, afterCommand: (changeSeq) => files.changesApplied(changeSeq),
      beforeCommand: () => files.settled(),
    });
    stops.push(() => bridge.stop());
    const health: HealthReport = {
      healthy: true, agentId, hostname: files.hello.hostname, bootId: files.hello.bootId,
      since: new Date().toISOString(), pid: process.pid, devices: devicesAt,
      maps: maps.map(({ slavePath, at }) => ({ slavePath, at })),
    };
    await writeFile(join(dir, HEALTH_FILE), `${JSON.stringify(health)}\n`);
    stops.push(() => rm(join(dir, HEALTH_FILE), { force: true }));
    log.info({
      dir, agentId, hostname: health.hostname, commands: bridge.commands.length, missing: bridge.missing.length,
      pythonFallback: options.pythonFallback ?? false,
    }, 'sidecar ready');
    return { health, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * A devpts instance of our own at `at` (new instance: its terminals are ours alone, and test
 * containers, which bind <dir>, see them at the same path): the device mount's relayed
 * terminals. Undefined where it cannot be mounted (not root): the host's /dev/ptmx then, whose
 * terminals test containers do not see.
 */
async function mountPtys(at: string, log: Logger): Promise<string | undefined> {
  await mkdir(at, { recursive: true });
  try {
    await systemCommand('mount', ['-t', 'devpts', '-o', 'newinstance,ptmxmode=0666,mode=0620', 'devpts', at]);
    return at;
  } catch (err) {
    log.warn({ err, at }, 'no devpts instance for relayed terminals: test containers will not reach the slave\'s terminals');
    return undefined;
  }
}

/**
 * Offers the slave's `map.slavePath` at `map.at`: a directory bound on a directory; a file or
 * device on a file; a relayed terminal (a link into <dir>/pts) as its pseudo-terminal itself,
 * so that a test opening /dev/ttyBOARD gets a real terminal.
 */
async function bindMap(map: { slavePath: string; source: string; at: string }, seen: { at: string; here: string }): Promise<void> {
  const source = await followSeen(map.source, seen).catch(() => {
    throw new Error(`--map ${map.slavePath}: no such file, directory or device on the slave`);
  });
  if (await isDirectory(source)) {
    await mkdir(map.at, { recursive: true });
  } else {
    await mkdir(posix.dirname(map.at), { recursive: true });
    await writeFile(map.at, '', { flag: 'a' }); // the mountpoint a file's bind needs
  }
  await systemCommand('mount', ['--bind', source, map.at]);
}

/**
 * `path` with the links at its end followed as the test container will follow them: the mounts
 * show absolute links under where the test sees the slave (`seen.at`, mount/symlink-view.ts),
 * which is `seen.here` in this container.
 */
async function followSeen(path: string, seen: { at: string; here: string }): Promise<string> {
  let at = path;
  for (let links = 0; links < 40; links++) {
    if (!(await lstat(at)).isSymbolicLink()) return realpath(at);
    const target = await readlink(at);
    if (target === seen.at || target.startsWith(`${seen.at}/`)) at = seen.here + target.slice(seen.at.length);
    else at = posix.resolve(posix.dirname(at), target);
  }
  throw new Error(`${path}: too many links`);
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((st) => st.isDirectory(), () => false);
}
