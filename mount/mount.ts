/**
 * Mounting a slave: find its agent on the bus, say hello, clear a stale mountpoint, and serve
 * the kernel through FUSE until unmounted. The sidecar uses this as a library.
 */
import { execFile } from 'node:child_process';
import { posix } from 'node:path';
import { constants } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { LONG_PATH_MAX, LONG_PATHS_CAPABILITY, MASTER_HANDLE_OPENS_CAPABILITY, MASTER_HANDLES_CAPABILITY, PATH_MAX, RENAME_EXCHANGE_CAPABILITY, RENAME_NOREPLACE_CAPABILITY, type FeedState, type HelloInfo } from '../protocol/index.js';
import { AgentClient, chooseAgent } from '../transport/agent-client.js';
import { connectBus } from '../transport/bus.js';
import { ChangeFeed } from '../transport/change-feed.js';
import { AttrCache } from './attr-cache.js';
import { MOUNT_ITSELF } from './callers.js';
import { FuseAdapter, MAX_TRANSFER } from './fuse-adapter.js';
import { deviceTuning, parseMountOptions } from './mount-options.js';
import { DeviceFs } from './device-fs.js';
import { DEFAULT_RENEW_MS } from './flock-wait.js';
import { keeps } from './kernel-cache.js';
import type { MountFs } from './mount-fs.js';
import { RemoteFs } from './remote-fs.js';
import { SymlinkView } from './symlink-view.js';
import { DeviceStream } from './device-stream.js';
import { TerminalRelays } from './terminal/terminal-relays.js';

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
  /** Whether every change on the slave reaches the mount's caches ('live'), or they keep answers briefly. */
  readonly coherence: FeedState;
  /** Forgets what the mount and the kernel cache of the slave. */
  clearCache(): void;
  /**
   * Resolves once the mount has applied every change the slave's feed reported up to
   * `changeSeq` (a bridged command's exit: protocol/changes.ts); undefined: not known, so
   * forget what may have changed.
   */
  changesApplied(changeSeq: number | undefined): Promise<void>;
  /**
   * Resolves once everything written and changed through the mount so far is applied on the
   * slave, answered or refused (the barrier before a bridged command starts: it sees what the
   * test did just before it). Bounded by the agent client's wait for an unreachable agent.
   */
  settled(): Promise<void>;
  /** Detaches the mount, after sending on what it answered without waiting. */
  unmount(): Promise<void>;
}

/** How long a bridged command's exit waits for the mount to apply its changes (then: forget all). */
const BARRIER_TIMEOUT_MS = 5000;

export class MountError extends Error {
  override name = 'MountError';
}

/**
 * Bytes per coalesced write or read-ahead fetch: the most whole pages a message holds with room
 * for its head (about 100 bytes; 4 KiB kept, as the agent keeps for its replies). 1020 KiB with
 * the default 1 MiB max_payload: the 64 KiB multiple it was (960 KiB) cost 7 % more messages.
 */
export function chunkSizeFor(maxPayload: number): number {
  return Math.max(65536, Math.floor((maxPayload - 4096) / 4096) * 4096);
}

/** A third of the agent's lease on flock locks (agent/lock-leases.ts), so a renewal lost now and then costs none. */
function lockRenewMs(hello: HelloInfo): number {
  return hello.lockLease === undefined ? DEFAULT_RENEW_MS : Math.max(hello.lockLease / 3, 50);
}

/** Detaches whatever is mounted at `mountPath` (lazily), as `fusermount3 -uz` does. */
export async function forceUnmount(mountPath: string): Promise<void> {
  await promisify(execFile)('fusermount3', ['-u', '-z', mountPath], { timeout: 10_000 });
}

/**
 * The device mount's relay of the slave's terminals through the master's pseudo-terminals, from
 * the host's /dev/ptmx or a devpts instance (`-o ptys=DIR`: the sidecar's, which test containers
 * see), where the agent can stream them; none where it cannot (older agents: their terminals are
 * plain streams then).
 */
function relayTerminals(client: AgentClient, hello: HelloInfo, ptys: string | undefined, log: Logger): TerminalRelays | undefined {
  if (!hello.capabilities.includes('dev.stream')) {
    log.info('the agent cannot stream devices: its terminals are served as plain files');
    return undefined;
  }
  const relayLog = log.child({ component: 'terminals' });
  return new TerminalRelays(ptys === undefined ? '/dev/ptmx' : posix.join(ptys, 'ptmx'), {
    settings: async (path) => hello.capabilities.includes('dev.tcgetattr') ? (await client.call('dev.tcgetattr', { path })).termios : null,
    setLine: async (path, change) => {
      if (hello.capabilities.includes('dev.setline')) await client.call('dev.setline', { path, ...change });
    },
    open: (path, events) => DeviceStream.open(client, path, constants.O_RDWR | constants.O_NOCTTY, true, undefined, events, relayLog),
  }, relayLog);
}

/**
 * The names this machine's programs may give the mountpoint: as given, as the kernel has it
 * (through no symlink), and from a shell's logical `$PWD` where it was given relative.
 */
async function mountpointNames(mountPath: string): Promise<string[]> {
  const names = new Set([posix.resolve(mountPath), await realpath(mountPath)]);
  const shellDir = process.env.PWD;
  if (!mountPath.startsWith('/') && shellDir?.startsWith('/')) names.add(posix.resolve(shellDir, mountPath));
  return [...names];
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
async function checkAllowOther(kernelOptions: string[]): Promise<void> {
  const other = kernelOptions.find((o) => o === 'allow_other' || o === 'allow_root');
  if (other === undefined || process.geteuid?.() === 0) return;
  const conf = await readFile('/etc/fuse.conf', 'utf8').catch(() => '');
  if (/^\s*user_allow_other\s*$/m.test(conf)) return;
  throw new MountError(`-o ${other}: a non-root user may mount for other users only where /etc/fuse.conf has the line `
    + '\'user_allow_other\' (as root: echo user_allow_other >> /etc/fuse.conf)');
}

export async function mountSlave(options: MountOptions): Promise<MountedSlave> {
  const log = options.log.child({ component: 'mount', mountPath: options.mountPath });
  await checkAllowOther(parseMountOptions(options.options, '').kernelOptions);
  const bus = await connectBus({ url: options.natsUrl, name: 'splitbrain-mount', log: log.child({ component: 'bus' }) });
  /** Closed if the mount fails after it was made (its session link). */
  let made: AgentClient | undefined;
  try {
    const agentId = options.agentId ?? await chooseAgent(bus);
    let tuning = parseMountOptions(options.options, agentId);
    const client = new AgentClient(bus, agentId, { timeoutMs: tuning.requestTimeoutMs, slaveWaitMs: options.slaveWaitMs, log });
    made = client;
    // At mount time the agent must be there (as sshfs needs its server); later it may go and come back.
    const hello = await client.hello({ slaveWaitMs: 0 }).catch((err: unknown) => {
      throw new MountError(`agent ${agentId} does not answer: ${(err as Error).message}`, { cause: err });
    });
    log.info({ agentId, hostname: hello.hostname, bootId: hello.bootId, root: hello.root }, 'agent found');
    await clearStaleMount(options.mountPath, log);
    const fallback = tuning.fallbackSeconds;
    const shortTimeouts = { attr: fallback, entry: fallback, negative: fallback };
    const shortCache = { attrTtlMs: fallback * 1000, entryTtlMs: fallback * 1000, negativeTtlMs: fallback * 1000 };
    const cache = new AttrCache(shortCache);
    client.helloOnReconnect();
    // A file mount's requests (its data above all) go on a direct connection to the agent when
    // it offers one (transport/session-link.ts); a device mount's streams have links of their own.
    if (!options.devices && tuning.link && hello.capabilities.includes('agent.link')) client.useLink();
    // A restarted slave may have changed anything: nothing cached stays (open files are reopened).
    client.onRestart(() => cache.clear());
    // Where this mount's callers see the slave's root: absolute link targets are translated by it.
    const symlinks = new SymlinkView(options.devices && tuning.symlinks === 'raw' ? 'relative' : tuning.symlinks,
      tuning.seenAt ?? posix.resolve(options.mountPath), await mountpointNames(options.mountPath));
    let fs: MountFs;
    let remote: RemoteFs | undefined;
    let terminals: TerminalRelays | undefined;
    /** The change feed's state: the mount predicts changes only while it is live. */
    let feedState: FeedState = 'off';
    if (options.devices) {
      if (!hello.capabilities.includes('dev.open')) throw new MountError(`agent ${agentId} serves no devices`);
      terminals = relayTerminals(client, hello, tuning.ptys, log);
      fs = new DeviceFs(client, symlinks, log.child({ component: 'device-fs' }), terminals, hello.capabilities.includes('dev.flock'), lockRenewMs(hello));
      tuning = deviceTuning(tuning);
    } else {
      fs = remote = new RemoteFs(client, {
        cache, chunkSize: chunkSizeFor(bus.maxPayload),
        readAheadChunks: tuning.readAheadChunks, writesInFlight: tuning.writesInFlight, unsyncedMaxBytes: tuning.unsyncedMaxBytes,
        symlinks,
        pipeline: hello.euid === 0 && !hello.readOnly
          && ['fs.fchmod', 'fs.fchown', 'fs.futimens'].every((op) => hello.capabilities.includes(op)),
        coherent: () => feedState === 'live',
        // As the agent said at start: one restarted with another root keeps this mount's bound.
        agentRoot: hello.root,
        masterHandles: hello.capabilities.includes(MASTER_HANDLES_CAPABILITY),
        masterHandleOpens: hello.capabilities.includes(MASTER_HANDLE_OPENS_CAPABILITY),
        renameNoReplace: hello.capabilities.includes(RENAME_NOREPLACE_CAPABILITY),
        renameExchange: hello.capabilities.includes(RENAME_EXCHANGE_CAPABILITY),
        longPaths: hello.capabilities.includes(LONG_PATHS_CAPABILITY),
        flock: hello.capabilities.includes('fs.flock'), lockRenewMs: lockRenewMs(hello),
      }, log.child({ component: 'remote-fs' }));
      // The root's mode gates every answer the cache gives a non-root caller (cacheAnswers), and
      // the kernel, which never looks the root up, may not ask for it.
      await fs.getattr('/', MOUNT_ITSELF);
    }
    const adapter = new FuseAdapter(fs, {
      mountPath: options.mountPath, kernelOptions: tuning.kernelOptions, timeouts: shortTimeouts,
      directIo: options.devices === true, kernelChecks: tuning.kernelChecks,
      // The feed keeps the page cache true where there is one and answers may be kept at all.
      pageCacheFollowsAttrs: options.devices === true || !hello.capabilities.includes('fs.changes') || !keeps(tuning.kernel),
      // File writes are gathered into chunks whatever their size, so the kernel may hand over a
      // program's 1 MiB write whole: one FUSE request per MiB, not 1020 + 4 KiB (issue 22). A
      // device write goes as one message, so it must fit one.
      maxTransfer: options.devices ? chunkSizeFor(bus.maxPayload) : MAX_TRANSFER,
      maxPath: !options.devices && hello.capabilities.includes(LONG_PATHS_CAPABILITY) ? LONG_PATH_MAX : PATH_MAX,
    }, log);
    // What the mount told the kernel ahead of the agent's verdict, and the verdict differed.
    cache.onStale = (path, entry) => adapter.invalidateStale(posix.dirname(path), posix.basename(path), entry);
    if (remote) remote.onWrittenWhole = (path, data) => adapter.storeWritten(path, data);
    const forgetAll = () => {
      cache.clear();
      remote?.slaveChanged('/', null);
      adapter.invalidateAll();
    };
    // A restarted slave may have changed anything: the kernel forgets it too.
    client.onRestart(forgetAll);
    if (options.devices) {
      // Its devices were closed with it: opened again, unless the slave itself rebooted.
      let hostBootId = hello.hostBootId;
      client.onRestart(() => void client.hello({ slaveWaitMs: 0 }).then((now) => {
        const slaveRebooted = now.hostBootId !== hostBootId;
        hostBootId = now.hostBootId;
        log.info({ slaveRebooted }, 'agent restarted: opening its devices again where the slave did not reboot');
        terminals?.agentRestarted(slaveRebooted);
        void (fs as DeviceFs).agentRestarted(slaveRebooted);
      }, (err: unknown) => {
        log.warn({ err }, 'agent restarted but does not answer: its devices went away');
        terminals?.agentRestarted(true);
        void (fs as DeviceFs).agentRestarted(true);
      }));
    }
    const feed = options.devices || !hello.capabilities.includes('fs.changes')
      ? undefined : await ChangeFeed.open(bus, agentId, log, { ownOrigin: client.origin });
    if (feed) {
      const live = tuning.kernel;
      // Long caching only while every change on the slave reaches us; otherwise sshfs-like.
      const coherent = (state: FeedState) => {
        feedState = state;
        const on = state === 'live';
        adapter.setTimeouts(on ? live : shortTimeouts, on);
        cache.setTimeouts(on ? tuning.cache : shortCache);
        if (on) log.info({ timeouts: live }, 'slave change feed live: caching long');
        else log.warn({ state, fallbackSeconds: fallback }, 'slave change feed not live: caching briefly');
      };
      coherent(feed.state);
      feed.onState(coherent);
      feed.onChanges((changes) => {
        for (const { dir, name, kind } of changes) {
          cache.slaveChanged(dir, name, kind === 'entry');
          remote?.slaveChanged(dir, name);
          adapter.invalidate(dir, name, kind === 'entry');
        }
      });
      feed.onLost((reason) => {
        log.warn({ reason }, 'slave changes may have been missed: forgetting everything cached');
        forgetAll();
      });
    } else if (!options.devices) {
      log.warn({ fallbackSeconds: fallback }, 'the agent has no change feed: caching briefly');
    }
    await adapter.mount().catch((err: unknown) => {
      throw new MountError(`cannot mount on ${options.mountPath}: ${(err as Error).message}`, { cause: err });
    });
    log.info({ options: tuning.kernelOptions, timeouts: tuning.kernel }, 'mounted');
    return {
      hello, mountPath: options.mountPath,
      get coherence(): FeedState { return feed?.state ?? 'off'; },
      clearCache: () => forgetAll(),
      async changesApplied(changeSeq: number | undefined) {
        // The bridged command's changes, as the feed reports them, are in the kernel's caches
        // before its exit is: the test reads what it wrote. Without a position or a live feed
        // (then nothing is cached for long anyway), forget all rather than wait.
        if (feed && changeSeq !== undefined && feed.state === 'live') await feed.applied(changeSeq, BARRIER_TIMEOUT_MS);
        else forgetAll();
        await adapter.applied();
      },
      settled: async () => { await remote?.settled(); },
      async unmount() {
        await feed?.close();
        terminals?.close();
        await adapter.unmount().catch((err: unknown) => {
          log.warn({ err }, 'unmount reported an error');
        });
        // What programs were told is done reaches the slave before the bus goes.
        await remote?.settled();
        client.close();
        await bus.close();
      },
    };
  } catch (err) {
    made?.close();
    await bus.close();
    throw err;
  }
}
