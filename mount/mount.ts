/**
 * Mounting a slave: find its agent on the bus, say hello, clear a stale mountpoint, and serve
 * the kernel through FUSE until unmounted. The sidecar uses this as a library.
 */
import { readFile, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { HelloInfo } from '../protocol/index.js';
import { AgentClient, chooseAgent } from '../transport/agent-client.js';
import { connectBus } from '../transport/bus.js';
import { AttrCache } from './attr-cache.js';
import { MOUNT_ITSELF } from './callers.js';
import { FuseAdapter, forceUnmount } from './fuse-adapter.js';
import { deviceFuseOptions, parseMountOptions } from './mount-options.js';
import { DeviceFs } from './device-fs.js';
import type { MountFs } from './mount-fs.js';
import { RemoteFs } from './remote-fs.js';

export interface MountOptions {
  natsUrl: string;
  /** Which agent; when absent, the only agent that answers on the bus. */
  agentId?: string;
  mountPath: string;
  /** sshfs-style -o words. */
  options: string[];
  /** Mount the agent's devices (its --dev-root) instead of its filesystem. */
  devices?: boolean;
  /** How long an operation waits for an unreachable agent before EIO (default 60 s; 0: at once). */
  slaveWaitMs?: number;
  log: Logger;
}

export interface MountedSlave {
  readonly hello: HelloInfo;
  readonly mountPath: string;
  /** Forgets what the mount caches of the slave (after a bridged command changed it). */
  clearCache(): void;
  /**
   * Resolves once the mount has applied every change the slave's feed reported up to
   * `changeSeq` (a bridged command's exit: protocol/changes.ts); undefined: not known, so
   * forget what may have changed.
   */
  changesApplied(changeSeq: number | undefined): Promise<void>;
  unmount(): Promise<void>;
}

export class MountError extends Error {
  override name = 'MountError';
}

/** Bytes per coalesced write or read-ahead fetch: the largest 64 KiB multiple a message holds. */
export function chunkSizeFor(maxPayload: number): number {
  return Math.max(65536, Math.floor((maxPayload - 8192) / 65536) * 65536);
}

/** A mountpoint left behind by a dead mount answers ENOTCONN: detach it so we can mount again. */
async function clearStaleMount(mountPath: string, log: Logger): Promise<void> {
  try {
    const st = await stat(mountPath);
    if (!st.isDirectory()) throw new MountError(`mountpoint ${mountPath} is not a directory`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN') {
      log.warn({ mountPath }, 'stale mountpoint (transport endpoint is not connected): unmounting it');
      await forceUnmount(mountPath);
      return;
    }
    if (code === 'ENOENT') throw new MountError(`mountpoint ${mountPath} does not exist`);
    throw err;
  }
}

/**
 * fusermount lets a non-root user mount for other users (allow_other, allow_root) only where
 * /etc/fuse.conf says `user_allow_other`; its own refusal reaches us as a bare mount failure.
 */
async function checkAllowOther(fuseOptions: string[]): Promise<void> {
  const other = fuseOptions.find((o) => o === 'allow_other' || o === 'allow_root');
  if (other === undefined || process.geteuid?.() === 0) return;
  const conf = await readFile('/etc/fuse.conf', 'utf8').catch(() => '');
  if (/^\s*user_allow_other\s*$/m.test(conf)) return;
  throw new MountError(`-o ${other}: a non-root user may mount for other users only where /etc/fuse.conf has the line `
    + '\'user_allow_other\' (as root: echo user_allow_other >> /etc/fuse.conf)');
}

export async function mountSlave(options: MountOptions): Promise<MountedSlave> {
  const log = options.log.child({ component: 'mount', mountPath: options.mountPath });
  await checkAllowOther(parseMountOptions(options.options, '').fuseOptions);
  const bus = await connectBus({ url: options.natsUrl, name: 'splitbrain-mount', log: log.child({ component: 'bus' }) });
  try {
    const agentId = options.agentId ?? await chooseAgent(bus);
    const tuning = parseMountOptions(options.options, agentId);
    const client = new AgentClient(bus, agentId, { timeoutMs: tuning.requestTimeoutMs, slaveWaitMs: options.slaveWaitMs, log });
    // At mount time the agent must be there (as sshfs needs its server); later it may go and come back.
    const hello = await client.hello({ slaveWaitMs: 0 }).catch((err: unknown) => {
      throw new MountError(`agent ${agentId} does not answer: ${(err as Error).message}`, { cause: err });
    });
    log.info({ agentId, hostname: hello.hostname, bootId: hello.bootId, root: hello.root }, 'agent found');
    await clearStaleMount(options.mountPath, log);
    const cache = new AttrCache(tuning.cache);
    client.helloOnReconnect();
    // A restarted slave may have changed anything: nothing cached stays (open files are reopened).
    client.onRestart(() => cache.clear());
    let fs: MountFs;
    let fuseOptions = tuning.fuseOptions;
    if (options.devices) {
      if (!hello.capabilities.includes('dev.open')) throw new MountError(`agent ${agentId} serves no devices`);
      fs = new DeviceFs(client, log.child({ component: 'device-fs' }));
      fuseOptions = deviceFuseOptions(fuseOptions);
    } else {
      fs = new RemoteFs(client, {
        cache, chunkSize: chunkSizeFor(bus.maxPayload),
        readAheadChunks: tuning.readAheadChunks, writesInFlight: tuning.writesInFlight, unsyncedMaxBytes: tuning.unsyncedMaxBytes,
        symlinks: tuning.symlinks,
        pipeline: hello.euid === 0 && !hello.readOnly
          && ['fs.fchmod', 'fs.fchown', 'fs.futimens'].every((op) => hello.capabilities.includes(op)),
      }, log.child({ component: 'remote-fs' }));
      // The root's mode gates every answer the cache gives a non-root caller (cacheAnswers), and
      // the kernel, which never looks the root up, may not ask for it.
      await fs.getattr('/', MOUNT_ITSELF);
    }
    const adapter = new FuseAdapter(fs, { mountPath: options.mountPath, fuseOptions }, log);
    await adapter.mount().catch((err: unknown) => {
      throw new MountError(`cannot mount on ${options.mountPath}: ${(err as Error).message}`, { cause: err });
    });
    log.info({ options: fuseOptions }, 'mounted');
    return {
      hello, mountPath: options.mountPath,
      clearCache: () => cache.clear(),
      changesApplied: async () => cache.clear(),
      async unmount() {
        await adapter.unmount().catch((err: unknown) => {
          log.warn({ err }, 'unmount reported an error');
        });
        await bus.close();
      },
    };
  } catch (err) {
    await bus.close();
    throw err;
  }
}
