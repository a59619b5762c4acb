/**
 * sshfs-style `-o` options of `splitbrain mount`, turned into libfuse's option list, the cache's
 * timeouts and the request deadline. Unknown options are an error, not silently ignored.
 */
import { posix } from 'node:path';
import type { CacheTimeouts } from './attr-cache.js';
import type { KernelTimeouts } from './kernel-cache.js';

/**
 * How a mount shows a slave's symlinks and stores the ones made through it
 * (protocol/symlink-target.ts). `translate`: absolute targets shown under the path where the
 * mount's callers see the slave's root (`seen_at`, by default the mountpoint) and stored with that
 * prefix replaced by `/`; relative ones byte for byte, clamped at the root. `relative`: every
 * target shown relative to the link. Both lead only into the slave, never to the master's own
 * files. `raw`: as stored, both ways, for a mount placed at the slave's own paths (absolute
 * targets then name the master's files wherever the mount is not).
 */
export type SymlinkMode = 'translate' | 'relative' | 'raw';
const SYMLINK_MODES: readonly SymlinkMode[] = ['translate', 'relative', 'raw'];

export interface MountTuning {
  /** Options for the kernel's mount (libfuse 3's session options). */
  kernelOptions: string[];
  /** How long the kernel keeps names, attributes and "no such name" answers while the slave's change feed is live. */
  kernel: KernelTimeouts;
  /** How long the kernel and the mount keep anything when it is not (cache_timeout). */
  fallbackSeconds: number;
  /** The kernel checks permissions against the slave's modes and ACLs (allow_other mounts). */
  kernelChecks: boolean;
  /** -o default_permissions was given (not only implied by allow_other). */
  askedChecks: boolean;
  /** The mount's own cache while the feed is live. */
  cache: CacheTimeouts;
  requestTimeoutMs: number;
  readAheadChunks: number;
  writesInFlight: number;
  /** Bytes written but not yet durable on the slave the mount keeps (retained-writes.ts). */
  unsyncedMaxBytes: number;
  symlinks: SymlinkMode;
  /** -o seen_at: where the mount's callers see the slave's root (absolute, normalised); else the mountpoint. */
  seenAt?: string;
  /** -o link: requests go on a session link to the agent when it offers one (auto), or on the bus alone (off). */
  link: boolean;
  /** -o ptys: the devpts instance the device mount takes its terminals' pseudo-terminals from; else /dev/ptmx's. */
  ptys?: string;
}

export class MountOptionError extends Error {
  override name = 'MountOptionError';
}

/**
 * Two layers of cache: the kernel's (attr_timeout, entry_timeout, negative_timeout), which
 * answers stat and lookups without leaving the kernel, and the mount's own, which answers the
 * kernel without a round trip. The mount's own changes update both at once;
 * the slave's reach them through the agent's change feed (invalidation, fuse-adapter.ts), so
 * both keep answers long while the feed is live; without it (an agent that has none, a watch
 * lost or overflowed) they keep them `cache_timeout` seconds, as sshfs does its 20.
 * `-o cache=no` turns both off.
 */
export const DEFAULTS = {
  attrTimeout: 60,
  entryTimeout: 60,
  negativeTimeout: 60,
  cacheTimeout: 1,
  timeout: 30,
  readAheadChunks: 4,
  writesInFlight: 4,
  unsyncedMaxMiB: 64,
  symlinks: 'translate' as SymlinkMode,
  link: 'auto' as 'auto' | 'off',
};

function seconds(name: string, value: string | undefined): number {
  const n = Number(value);
  if (value === undefined || value === '' || !Number.isFinite(n) || n < 0) {
    throw new MountOptionError(`option ${name} needs a number of seconds, got '${value ?? ''}'`);
  }
  return n;
}

function count(name: string, value: string | undefined, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new MountOptionError(`option ${name} needs a whole number from 1 to ${max}, got '${value ?? ''}'`);
  }
  return n;
}

/** `options` are the comma-separated words of every -o given, in order. */
export function parseMountOptions(options: string[], agentId: string): MountTuning {
  let attrTimeout = DEFAULTS.attrTimeout;
  let entryTimeout = DEFAULTS.entryTimeout;
  let negativeTimeout = DEFAULTS.negativeTimeout;
  let cacheTimeout = DEFAULTS.cacheTimeout;
  let cache = true;
  let timeout = DEFAULTS.timeout;
  let readAheadChunks = DEFAULTS.readAheadChunks;
  let writesInFlight = DEFAULTS.writesInFlight;
  let unsyncedMaxMiB = DEFAULTS.unsyncedMaxMiB;
  let symlinks = DEFAULTS.symlinks;
  let seenAt: string | undefined;
  let ptys: string | undefined;
  let link = DEFAULTS.link;
  const passthrough: string[] = [];
  for (const option of options.flatMap((o) => o.split(',')).filter((o) => o.length > 0)) {
    const [name, value] = option.split('=', 2) as [string, string | undefined];
    switch (name) {
      case 'attr_timeout': attrTimeout = seconds(name, value); break;
      case 'entry_timeout': entryTimeout = seconds(name, value); break;
      case 'negative_timeout': negativeTimeout = seconds(name, value); break;
      case 'cache_timeout': cacheTimeout = seconds(name, value); break;
      case 'cache':
        if (value !== 'yes' && value !== 'no') throw new MountOptionError(`option cache takes yes or no, got '${value ?? ''}'`);
        cache = value === 'yes';
        break;
      case 'timeout': timeout = seconds(name, value); break;
      case 'readahead': readAheadChunks = count(name, value, 64); break;
      case 'writes_in_flight': writesInFlight = count(name, value, 64); break;
      case 'unsynced_max': unsyncedMaxMiB = count(name, value, 65536); break;
      case 'symlinks':
        if (!SYMLINK_MODES.includes(value as SymlinkMode)) {
          throw new MountOptionError(`option symlinks takes ${SYMLINK_MODES.join(', ')}, got '${value ?? ''}'`);
        }
        symlinks = value as SymlinkMode;
        break;
      case 'link':
        if (value !== 'auto' && value !== 'off') throw new MountOptionError(`option link takes auto or off, got '${value ?? ''}'`);
        link = value;
        break;
      case 'seen_at': seenAt = absolutePath(name, value); break;
      case 'ptys': ptys = absolutePath(name, value); break;
      case 'allow_other': case 'allow_root': case 'ro': case 'rw': case 'default_permissions':
      case 'debug':
        if (value !== undefined) throw new MountOptionError(`option ${name} takes no value`);
        passthrough.push(name);
        break;
      // libfuse 3 mounts on a non-empty directory anyway; accepted for sshfs users' habits.
      case 'nonempty':
        if (value !== undefined) throw new MountOptionError(`option ${name} takes no value`);
        break;
      default:
        throw new MountOptionError(`unknown mount option '${option}'`);
    }
  }
  if (!cache) {
    attrTimeout = 0;
    entryTimeout = 0;
    negativeTimeout = 0;
    cacheTimeout = 0;
  }
  if (timeout === 0) throw new MountOptionError('option timeout must be more than 0 seconds');
  // Where other users may enter, the kernel checks their permissions against what it caches of
  // the slave's modes and ACLs (cheap: the caches stay coherent); the agent checks again.
  const askedChecks = passthrough.includes('default_permissions');
  const kernelChecks = askedChecks || passthrough.includes('allow_other');
  const kernelOptions = [`fsname=splitbrain:${agentId}`, 'subtype=splitbrain', ...passthrough.filter((o) => o !== 'default_permissions')];
  return {
    kernelOptions: kernelChecks ? [...kernelOptions, 'default_permissions'] : kernelOptions,
    kernelChecks,
    askedChecks,
    kernel: { attr: attrTimeout, entry: entryTimeout, negative: negativeTimeout },
    fallbackSeconds: cacheTimeout,
    cache: { attrTtlMs: attrTimeout * 1000, entryTtlMs: entryTimeout * 1000, negativeTtlMs: negativeTimeout * 1000 },
    requestTimeoutMs: timeout * 1000,
    readAheadChunks,
    writesInFlight,
    unsyncedMaxBytes: unsyncedMaxMiB * 1024 * 1024,
    symlinks,
    link: link === 'auto',
    ...(seenAt === undefined ? {} : { seenAt }),
    ...(ptys === undefined ? {} : { ptys }),
  };
}

/** An absolute path, normalised (no `.`, `..`, doubled or trailing slash): what targets are compared with. */
function absolutePath(name: string, value: string | undefined): string {
  if (value === undefined || !value.startsWith('/') || value.includes('\0')) {
    throw new MountOptionError(`option ${name} needs an absolute path, got '${value ?? ''}'`);
  }
  return posix.normalize(value).replace(/(.)\/$/, '$1');
}

/**
 * A device mount: the devices' own names (fsname), and no kernel caching of names or attributes
 * (pts come and go); the adapter adds direct I/O (a read returns what the device has). With
 * nothing cached, every open reaches the agent, which judges it as the caller: the kernel checks
 * only where asked (-o default_permissions).
 */
export function deviceTuning(tuning: MountTuning): MountTuning {
  const kernelOptions = tuning.kernelOptions
    .map((o) => o.replace(/^fsname=splitbrain:/, 'fsname=splitbrain-dev:'))
    .filter((o) => tuning.askedChecks || o !== 'default_permissions');
  return { ...tuning, kernelOptions, kernelChecks: tuning.askedChecks, kernel: { attr: 0, entry: 0, negative: 0 }, fallbackSeconds: 0 };
}
