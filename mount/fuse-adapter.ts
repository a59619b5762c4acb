/**
 * The only importer of fuse-native: turns kernel operations into MountFs calls and their
 * outcomes into what fuse-native expects (negative errno numbers, stat objects).
 *
 * fuse-native 2.2.6 is used with a small patch (mount/patches/, applied and built by
 * scripts/patch-deps.sh) that
 *  - fixes utimens (it passed atime as mtime) and passes UTIME_NOW/UTIME_OMIT through;
 *  - sets flag_utime_omit_ok, without which libfuse 2 drops a utimens that sets only one time
 *    (touch -m; tar restores every mtime that way);
 *  - passes create()'s open flags;
 *  - sets flag_nullpath_ok and hands JS a null path, so reads and writes on a file unlinked
 *    while open keep working after its directory is gone;
 *  - records every operation's caller (uid, gid, pid), which `fuse_native_current_caller` gives
 *    JS while that operation is being dispatched (fuse-native's own API never says who asks);
 *  - answers root's opendir in C, so that only other callers' opens of a directory reach JS.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import Fuse from 'fuse-native';
import type { Logger } from 'pino';
import { errnoName, errnoNumber, errnoOf, type Attr, type TimeSpec } from '../protocol/index.js';
import type { FuseCaller } from './callers.js';
import type { MountFs } from './mount-fs.js';

type Signal = (result: number, ...values: unknown[]) => void;
type NativeCallback = (...args: unknown[]) => void;

const U32_MAX = 0xffffffff;

/** fuse-native's stat object (times in milliseconds). */
function toFuseStat(attr: Attr) {
  return {
    mode: attr.mode, uid: attr.uid, gid: attr.gid, size: attr.size, dev: 0, nlink: attr.nlink,
    ino: attr.ino, rdev: attr.rdev, blksize: attr.blksize, blocks: attr.blocks,
    // Whole milliseconds: fuse-native carries no finer time, and truncating would drift by one.
    atime: Math.max(0, Math.round(attr.atimeMs)), mtime: Math.max(0, Math.round(attr.mtimeMs)),
    ctime: Math.max(0, Math.round(attr.ctimeMs)),
  };
}

type FuseStat = ReturnType<typeof toFuseStat>;

/** The stat a directory entry needs: the rest is read by getattr, never from a listing. */
function direntStat(mode: number, ino: number): FuseStat {
  return { mode, uid: 0, gid: 0, size: 0, dev: 0, nlink: 1, ino, rdev: 0, blksize: 0, blocks: 0, atime: 0, mtime: 0, ctime: 0 };
}

/** fuse-native's native stat layout: 18 uint32s, 64-bit values split low/high. */
function statArray(stat: FuseStat): Uint32Array {
  const ints = new Uint32Array(18);
  const put64 = (at: number, value: number) => {
    ints[at] = value % 0x100000000;
    ints[at + 1] = Math.floor(value / 0x100000000);
  };
  ints[0] = stat.mode;
  ints[1] = stat.uid;
  ints[2] = stat.gid;
  put64(3, stat.size);
  ints[5] = stat.dev;
  ints[6] = stat.nlink;
  ints[7] = stat.ino;
  ints[8] = stat.rdev;
  ints[9] = stat.blksize;
  put64(10, stat.blocks);
  put64(12, stat.atime);
  put64(14, stat.mtime);
  put64(16, stat.ctime);
  return ints;
}

const ERANGE = errnoNumber('ERANGE');

/** xattr results: the size when asked for it (empty target), ERANGE when it does not fit. */
function fitInto(result: number, value: Buffer | undefined, target: Buffer): number {
  if (result !== 0 || value === undefined) return result;
  if (target.length === 0) return value.length;
  if (value.length > target.length) return -ERANGE;
  value.copy(target);
  return value.length;
}

/** The patched binding sends UTIME_OMIT as all ones and UTIME_NOW as all ones but the lowest bit. */
function timeSpec(low: number, high: number): TimeSpec {
  if (high === U32_MAX && low === U32_MAX) return 'omit';
  if (high === U32_MAX && low === U32_MAX - 1) return 'now';
  return low + high * 0x100000000;
}

export interface FuseMountOptions {
  mountPath: string;
  /** libfuse -o options, already validated (e.g. 'big_writes', 'attr_timeout=1'). */
  fuseOptions: string[];
}

/** fuse-native with our option string and the patched native signatures. */
class SplitbrainFuse extends Fuse {
  constructor(mnt: string, ops: Record<string, NativeCallback>, private readonly optionList: string[]) {
    // fuse-native's own timeout answers ETIMEDOUT after 15 s; RemoteFs has its own deadline.
    super(mnt, ops, { timeout: false });
  }

  // fuse-native's option builder has no big_writes, max_write, hard_remove or use_ino.
  protected override _fuseOptions(): string {
    return `-o${this.optionList.join(',')}`;
  }

  // fuse-native routes fgetattr to getattr and drops the handle; we need the handle. Its
  // native side takes the stat as the Uint32Array that fuse-native's getattr path builds.
  _op_fgetattr(signal: Signal, path: string | null, fh: number): void {
    this.ops.fgetattr(path, fh, (result: number, stat?: FuseStat) => {
      if (result !== 0 || !stat) signal(result);
      else signal(0, statArray(stat));
    });
  }

  // fuse-native's own wrapper takes the handle for the flags; only other callers than root get
  // here (our patch answers root's opens in C).
  _op_opendir(signal: Signal, path: string, _fh: number, flags: number): void {
    this.ops.opendir(path, flags, signal);
  }

  _op_create(signal: Signal, path: string, mode: number, flags: number): void {
    this.ops.create(path, mode, flags, signal);
  }

  // fuse-native neither tells getxattr and listxattr how large the caller's buffer is nor
  // answers ERANGE when the value does not fit; these wrappers do both.
  _op_getxattr(signal: Signal, path: string, name: string, target: Buffer): void {
    this.ops.getxattr(path, name, (result: number, value?: Buffer) => {
      signal(fitInto(result, value, target), target.buffer);
    });
  }

  _op_listxattr(signal: Signal, path: string, target: Buffer): void {
    this.ops.listxattr(path, (result: number, names?: string[]) => {
      const list = names ? Buffer.from(names.map((n) => `${n}\0`).join('')) : undefined;
      signal(fitInto(result, list, target), target.buffer);
    });
  }

  _op_utimens(signal: Signal, path: string, aLow: number, aHigh: number, mLow: number, mHigh: number): void {
    this.ops.utimens(path, timeSpec(aLow, aHigh), timeSpec(mLow, mHigh), signal);
  }

  _op_read(signal: Signal, path: string | null, fh: number, buf: Buffer, len: number, offLow: number, offHigh: number): void {
    // As fuse-native's own: the result (bytes or -errno), a count it ignores, the buffer to detach.
    this.ops.read(path, fh, buf, len, offHigh * 4294967296 + offLow, (result: number) => {
      signal(result, 0, buf.buffer);
    });
  }
}

interface PatchedBinding {
  fuse_native_current_caller(ids: Buffer): void;
}

/**
 * Our build of fuse-native (the same file its index.js loads, so the same module). Without it,
 * node-gyp-build would silently load fuse-native's unpatched prebuilt binary and utimens would
 * set mtime to atime, and nobody would know who asks: refuse instead.
 */
function patchedBinding(): PatchedBinding {
  const require = createRequire(import.meta.url);
  const built = join(dirname(require.resolve('fuse-native')), 'build', 'Release', 'fuse.node');
  const binding = existsSync(built) ? require(built) as Partial<PatchedBinding> : {};
  if (typeof binding.fuse_native_current_caller !== 'function') {
    throw new Error('fuse-native was not built with splitbrain\'s patch: run scripts/setup.sh');
  }
  return binding as PatchedBinding;
}

export class FuseAdapter {
  private readonly fuse: SplitbrainFuse;
  private readonly binding: PatchedBinding;
  private readonly ids = Buffer.alloc(12);
  private readonly idWords = new Uint32Array(this.ids.buffer, this.ids.byteOffset, 3);

  constructor(private readonly fs: MountFs, options: FuseMountOptions, private readonly log: Logger) {
    this.binding = patchedBinding();
    this.fuse = new SplitbrainFuse(options.mountPath, this.operations(), options.fuseOptions);
  }

  /** Who the operation being dispatched is for: valid only before the dispatch returns. */
  private caller(): FuseCaller {
    this.binding.fuse_native_current_caller(this.ids);
    return { uid: this.idWords[0] as number, gid: this.idWords[1] as number, pid: this.idWords[2] as number };
  }

  mount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.mount((err) => (err ? reject(err) : resolve())));
  }

  unmount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.unmount((err) => (err ? reject(err) : resolve())));
  }

  /** Negative errno for fuse-native; errors without one are logged and become EIO. */
  private failure(op: string, err: unknown): number {
    const name = errnoOf(err);
    if (!name) this.log.error({ err, op }, 'operation failed without an errno: answering EIO');
    else if (this.log.isLevelEnabled('debug')) this.log.debug({ op, errno: name, msg: (err as Error).message }, 'operation failed');
    return -errnoNumber(name ?? 'EIO');
  }

  /**
   * Runs `work` for the operation's caller (read here: fuse-native dispatches one operation at a
   * time and calls us synchronously); `ok` turns its value into fuse-native's callback arguments.
   */
  private run<T>(op: string, cb: Signal, work: (caller: FuseCaller) => Promise<T>, ok: (value: T) => unknown[]): void {
    const caller = this.caller();
    const started = this.log.isLevelEnabled('debug') ? process.hrtime.bigint() : undefined;
    const trace = (errno: string) => {
      if (started === undefined) return;
      this.log.debug({ op, errno, micros: Number(process.hrtime.bigint() - started) / 1000 }, 'fuse op');
    };
    work(caller).then(
      (value) => {
        trace('OK');
        const [result, ...rest] = ok(value);
        cb(result as number, ...rest);
      },
      (err: unknown) => {
        const result = this.failure(op, err);
        trace(errnoName(result));
        cb(result);
      },
    );
  }

  private operations(): Record<string, NativeCallback> {
    const fs = this.fs;
    const done = (): unknown[] => [0];
    const ops = {
      init: (cb: Signal) => cb(0),
      getattr: (path: string, cb: Signal) =>
        this.run('getattr', cb, (who) => fs.getattr(path, who), (a) => [0, toFuseStat(a)]),
      fgetattr: (path: string | null, fh: number, cb: Signal) =>
        this.run('fgetattr', cb, (who) => fs.fgetattr(path, fh, who), (a) => [0, toFuseStat(a)]),
      access: (path: string, mode: number, cb: Signal) =>
        this.run('access', cb, (who) => fs.access(path, mode, who), done),
      statfs: (path: string, cb: Signal) =>
        this.run('statfs', cb, (who) => fs.statfs(path, who), (s) => [0, { ...s, favail: s.ffree, fsid: 0, flag: 0 }]),
      readdir: (path: string, cb: Signal) =>
        this.run('readdir', cb, (who) => fs.readdir(path, who), (names) => {
          const inodes = fs.listingInodes?.(path, names);
          if (!inodes) return [0, ['.', '..', ...names]];
          // With use_ino, libfuse takes d_ino and d_type from these (only st_ino and st_mode count).
          const stats = [inodes.dot, inodes.dotDot, ...inodes.entries].map(({ mode, ino }) => direntStat(mode, ino));
          return [0, ['.', '..', ...names], stats];
        }),
      open: (path: string, flags: number, cb: Signal) =>
        this.run('open', cb, (who) => fs.open(path, flags, who), (fh) => [0, fh]),
      ...(fs.opendir ? {
        opendir: (path: string, flags: number, cb: Signal) =>
          this.run('opendir', cb, (who) => (fs.opendir as NonNullable<MountFs['opendir']>)(path, flags, who), () => [0, 0]),
      } : {}),
      create: (path: string, mode: number, flags: number, cb: Signal) =>
        this.run('create', cb, (who) => fs.create(path, flags, mode, who), (fh) => [0, fh]),
      read: (path: string | null, fh: number, buf: Buffer, len: number, pos: number, cb: Signal) =>
        this.run('read', cb, (who) => fs.read(path, fh, buf, len, pos, who), (n) => [n]),
      write: (path: string | null, fh: number, buf: Buffer, len: number, pos: number, cb: Signal) =>
        this.run('write', cb, (who) => fs.write(path, fh, buf, len, pos, who), (n) => [n]),
      flush: (path: string | null, fh: number, cb: Signal) =>
        this.run('flush', cb, (who) => fs.flush(path, fh, who), done),
      fsync: (path: string | null, datasync: number, fh: number, cb: Signal) =>
        this.run('fsync', cb, (who) => fs.fsync(path, fh, datasync !== 0, who), done),
      release: (path: string | null, fh: number, cb: Signal) =>
        this.run('release', cb, (who) => fs.release(path, fh, who), done),
      truncate: (path: string, size: number, cb: Signal) =>
        this.run('truncate', cb, (who) => fs.truncate(path, size, who), done),
      ftruncate: (path: string | null, fh: number, size: number, cb: Signal) =>
        this.run('ftruncate', cb, (who) => fs.ftruncate(path, fh, size, who), done),
      unlink: (path: string, cb: Signal) => this.run('unlink', cb, (who) => fs.unlink(path, who), done),
      rename: (from: string, to: string, cb: Signal) => this.run('rename', cb, (who) => fs.rename(from, to, who), done),
      // fuse-native passes (target, linkpath) for symlink and (existing, newpath) for link.
      link: (existing: string, path: string, cb: Signal) =>
        this.run('link', cb, (who) => fs.link(existing, path, who), done),
      symlink: (target: string, path: string, cb: Signal) =>
        this.run('symlink', cb, (who) => fs.symlink(target, path, who), done),
      readlink: (path: string, cb: Signal) =>
        this.run('readlink', cb, (who) => fs.readlink(path, who), (target) => [0, target]),
      mkdir: (path: string, mode: number, cb: Signal) => this.run('mkdir', cb, (who) => fs.mkdir(path, mode, who), done),
      rmdir: (path: string, cb: Signal) => this.run('rmdir', cb, (who) => fs.rmdir(path, who), done),
      chmod: (path: string, mode: number, cb: Signal) => this.run('chmod', cb, (who) => fs.chmod(path, mode, who), done),
      chown: (path: string, uid: number, gid: number, cb: Signal) =>
        this.run('chown', cb, (who) => fs.chown(path, uid, gid, who), done),
      utimens: (path: string, atime: TimeSpec, mtime: TimeSpec, cb: Signal) =>
        this.run('utimens', cb, (who) => fs.utimens(path, atime, mtime, who), done),
      mknod: (path: string, mode: number, rdev: number, cb: Signal) =>
        this.run('mknod', cb, (who) => fs.mknod(path, mode, rdev, who), done),
      getxattr: (path: string, name: string, cb: Signal) =>
        this.run('getxattr', cb, (who) => fs.getxattr(path, name, who), (value) => [0, value]),
      listxattr: (path: string, cb: Signal) =>
        this.run('listxattr', cb, (who) => fs.listxattr(path, who), (names) => [0, names]),
      // fuse-native's own wrapper passes (path, name, value, position, flags, cb).
      setxattr: (path: string, name: string, value: Buffer, _position: number, flags: number, cb: Signal) =>
        this.run('setxattr', cb, (who) => fs.setxattr(path, name, value, flags, who), done),
      removexattr: (path: string, name: string, cb: Signal) =>
        this.run('removexattr', cb, (who) => fs.removexattr(path, name, who), done),
    };
    return ops as unknown as Record<string, NativeCallback>;
  }
}

/** Detaches whatever is mounted at `mountPath` (lazily, as `fusermount -uz` does). */
export function forceUnmount(mountPath: string): Promise<void> {
  return new Promise((resolve, reject) => Fuse.unmount(mountPath, (err) => (err ? reject(err) : resolve())));
}
