/**
 * sshfs-style `-o` options of `splitbrain mount`, turned into libfuse's option list, the cache's
 * timeouts and the request deadline. Unknown options are an error, not silently ignored.
 */
import type { CacheTimeouts } from './attr-cache.js';

/**
 * How the file mount shows a slave's symlinks (protocol/symlink-target.ts). `relative`: every
 * target relative to the link and inside the mount, so following a link lands on the slave,
 * never on the master's own files. `raw`: as stored, for a mount placed at the slave's own paths
 * (absolute targets then name the master's files wherever the mount is not).
 */
export type SymlinkMode = 'relative' | 'raw';

export interface MountTuning {
  fuseOptions: string[];
  cache: CacheTimeouts;
  requestTimeoutMs: number;
  readAheadChunks: number;
  writesInFlight: number;
  /** Bytes written but not yet durable on the slave the mount keeps (retained-writes.ts). */
  unsyncedMaxBytes: number;
  symlinks: SymlinkMode;
}

export class MountOptionError extends Error {
  override name = 'MountOptionError';
}

/**
 * Two layers of cache. The kernel's (attr_timeout, entry_timeout, negative_timeout) cannot be
 * invalidated from here, so by default it keeps only names (entry_timeout): attributes and
 * "no such file" answers always come to the mount, whose own cache (cache_timeout) is updated by
 * every change the mount makes (hard links included) and can be dropped when the slave changes
 * behind our back. A test that reads a file right after a command on the slave changed it
 * therefore sees the change. `-o attr_timeout=1,negative_timeout=1` trades that for speed.
 */
export const DEFAULTS = {
  attrTimeout: 0,
  entryTimeout: 1,
  negativeTimeout: 0,
  cacheTimeout: 1,
  timeout: 30,
  readAheadChunks: 4,
  writesInFlight: 4,
  unsyncedMaxMiB: 64,
  symlinks: 'relative' as SymlinkMode,
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
        if (value !== 'relative' && value !== 'raw') throw new MountOptionError(`option symlinks takes relative or raw, got '${value ?? ''}'`);
        symlinks = value;
        break;
      case 'allow_other': case 'allow_root': case 'ro': case 'rw': case 'default_permissions':
      case 'debug': case 'nonempty':
        if (value !== undefined) throw new MountOptionError(`option ${name} takes no value`);
        passthrough.push(name);
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
  return {
    fuseOptions: [
      `fsname=splitbrain:${agentId}`,
      'subtype=splitbrain',
      // libfuse 2 splits writes into 4 KiB pieces unless told otherwise.
      'big_writes',
      'max_write=131072',
      // The slave's inode numbers, so hard links look like hard links (tar, cp -a, rsync -H).
      'use_ino',
      // Keep the page cache across opens while the file's mtime and size are unchanged.
      ...(cache ? ['auto_cache'] : []),
      `attr_timeout=${attrTimeout}`,
      `entry_timeout=${entryTimeout}`,
      `negative_timeout=${negativeTimeout}`,
      ...passthrough,
    ],
    cache: { attrTtlMs: cacheTimeout * 1000, entryTtlMs: cacheTimeout * 1000, negativeTtlMs: cacheTimeout * 1000 },
    requestTimeoutMs: timeout * 1000,
    readAheadChunks,
    writesInFlight,
    unsyncedMaxBytes: unsyncedMaxMiB * 1024 * 1024,
    symlinks,
  };
}

/**
 * libfuse options for a device mount: direct I/O (no page cache: a read returns what the device
 * has, and size-0 files stream) and no kernel caching of names or attributes (pts come and go).
 */
export function deviceFuseOptions(fuseOptions: string[]): string[] {
  const kept = fuseOptions.filter((o) => !/^(auto_cache|attr_timeout|entry_timeout|negative_timeout|fsname)=?/.test(o));
  const fsname = fuseOptions.find((o) => o.startsWith('fsname='))?.replace('fsname=splitbrain:', 'fsname=splitbrain-dev:');
  return [...(fsname ? [fsname] : []), ...kept, 'direct_io', 'attr_timeout=0', 'entry_timeout=0', 'negative_timeout=0'];
}
