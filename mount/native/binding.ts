/**
 * The typed face of splitbrain-fuse.node (mount/native/*.c, built by scripts/setup.sh into
 * dist/native/): libfuse 3's low-level API. Only mount/fuse-adapter.ts imports this. Numbers
 * (op codes, attribute slots, flags) come from the binding itself.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * The kernel operations the binding passes on, by name. Their numbers are the binding's own
 * (sb-fuse.h's SB_OPS, exported as `ops`): nothing here is numbered, and loading the binding
 * checks that both sides name the same operations.
 */
export const OP_NAMES = [
  'LOOKUP', 'FORGET', 'GETATTR', 'SETATTR', 'READLINK', 'MKNOD', 'MKDIR', 'UNLINK', 'RMDIR',
  'SYMLINK', 'RENAME', 'LINK', 'OPEN', 'READ', 'WRITE', 'FLUSH', 'RELEASE', 'FSYNC', 'OPENDIR',
  'READDIR', 'RELEASEDIR', 'STATFS', 'SETXATTR', 'GETXATTR', 'LISTXATTR', 'REMOVEXATTR', 'ACCESS',
  'CREATE', 'READDIRPLUS', 'DESTROY', 'POLL', 'FSYNCDIR', 'FALLOCATE', 'LSEEK', 'COPY_FILE_RANGE', 'FLOCK',
] as const;
export type OpName = (typeof OP_NAMES)[number];

/** A node's attributes as the binding takes them, `attrSlots` numbers per node, by slot name. */
export type AttrSlotName = 'INO' | 'MODE' | 'NLINK' | 'UID' | 'GID' | 'RDEV' | 'SIZE' | 'BLOCKS' | 'BLKSIZE'
  | 'ATIME_S' | 'ATIME_NS' | 'MTIME_S' | 'MTIME_NS' | 'CTIME_S' | 'CTIME_NS';
/** A setattr's values (FuseRequest.setattr), by slot name. */
export type SetattrSlotName = 'MODE' | 'UID' | 'GID' | 'SIZE' | 'ATIME_S' | 'ATIME_NS' | 'MTIME_S' | 'MTIME_NS' | 'TO_SET';
/** libfuse's FUSE_SET_ATTR_* bits of a setattr's TO_SET. */
export type SetattrBitName = 'MODE' | 'UID' | 'GID' | 'SIZE' | 'ATIME' | 'MTIME' | 'ATIME_NOW' | 'MTIME_NOW' | 'CTIME';
/** Bits of an open or create reply. */
export type OpenFlagName = 'DIRECT_IO' | 'KEEP_CACHE' | 'NONSEEKABLE' | 'CACHE_DIR' | 'NOFLUSH';

/**
 * An opaque handle of one kernel request: answer it once. A second answer, or one after the
 * mount was disposed, names no request: the reply does nothing and returns false.
 */
export type RequestHandle = number;
/** An opaque handle of one mount. */
export type MountHandle = object & { readonly __mount: unique symbol };

/**
 * One kernel request, its arguments by name; which an op fills (the others are 0, -1 for `fh`,
 * or undefined): lookup, unlink, rmdir, removexattr: ino (the parent, or the node), name;
 * forget: nlookup; getattr: fh (an open file's, or -1); setattr: fh, setattr; readlink, statfs:
 * ino; mknod: name, mode, rdev; mkdir: name, mode; symlink: name, data (the target); rename:
 * name, ino2 (the new parent), name2, flags; link: ino2, name; open, opendir: flags; read,
 * readdir, readdirplus: fh, size, offset; write: fh, offset, data; flush, release, releasedir:
 * fh, flags; flock: fh, flags (the lock op); fsync: fh, datasync; setxattr: name, data, flags; getxattr: name, size; listxattr:
 * size; access: mask; create: name, mode, flags; poll: fh, notify. A write's data is a view of
 * memory the binding reuses for the next writes: valid until the request is answered.
 */
export interface FuseRequest {
  readonly handle: RequestHandle;
  readonly op: number;
  readonly ino: number;
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  readonly fh: number;
  readonly ino2: number;
  readonly mode: number;
  readonly rdev: number;
  readonly flags: number;
  readonly size: number;
  readonly offset: number;
  readonly mask: number;
  readonly nlookup: number;
  readonly datasync: boolean;
  /** poll: the kernel wants notifyPoll once the file is ready. */
  readonly notify: boolean;
  readonly name: Buffer | undefined;
  readonly name2: Buffer | undefined;
  readonly data: Uint8Array | undefined;
  readonly setattr: Float64Array | undefined;
  /** copy_file_range: the file written (its node is ino2), and the offset there. */
  readonly fh2: number;
  readonly offset2: number;
}

export type Dispatch = (request: FuseRequest) => void;

/** How the native side calls: FuseRequest's fields in its order, as arguments (crossing.c). */
type NativeDispatch = (
  handle: RequestHandle, op: number, ino: number, uid: number, gid: number, pid: number, fh: number, ino2: number,
  mode: number, rdev: number, flags: number, size: number, offset: number, mask: number, nlookup: number,
  datasync: boolean, notify: boolean, name: Buffer | undefined, name2: Buffer | undefined,
  data: Uint8Array | undefined, setattr: Float64Array | undefined, fh2: number, offset2: number,
) => void;

/** The module as it is loaded: `mount` takes the positional handler. */
type NativeBinding = Omit<FuseBinding, 'mount'> & {
  mount(mountPath: string, options: string, config: MountConfig, dispatch: NativeDispatch, fenced: (id: number) => void): MountHandle;
};

/** The native handler for `dispatch`: each request's object made by one literal (one shape, built at once). */
function byName(dispatch: Dispatch): NativeDispatch {
  return (handle, op, ino, uid, gid, pid, fh, ino2, mode, rdev, flags, size, offset, mask, nlookup, datasync, notify, name, name2, data, setattr, fh2, offset2) => {
    dispatch({ handle, op, ino, uid, gid, pid, fh, ino2, mode, rdev, flags, size, offset, mask, nlookup, datasync, notify, name, name2, data, setattr, fh2, offset2 });
  };
}

export interface MountConfig {
  /** The kernel checks POSIX ACLs (with default_permissions, which it then implies). */
  posixAcl: boolean;
  /** The kernel's writeback cache: writes are gathered in the page cache. */
  writeback: boolean;
  /** The kernel keeps symlink targets (dropped with the node's other caches on invalidation). */
  cacheSymlinks: boolean;
  /**
   * The kernel drops a file's cached pages whenever an answer brings another mtime than it
   * holds, and revalidates the attributes before each read (FUSE_AUTO_INVAL_DATA). Off, its
   * pages are dropped by the filesystem's invalidations (and at an open without keep_cache).
   */
  autoInvalData: boolean;
  /** Largest write the kernel sends (and read it asks for), at most 1 MiB. */
  maxWrite: number;
  /**
   * The kernel is told the filesystem drops set-id bits on write, truncate and chown itself
   * (FUSE_HANDLE_KILLPRIV), so it asks for no attributes before those.
   */
  killPriv: boolean;
  /**
   * flock(2) is the filesystem's to serve (FLOCK requests, `flags` holding LOCK_SH, LOCK_EX or
   * LOCK_UN, with LOCK_NB unless the caller waits), not the kernel's own table.
   */
  flock: boolean;
}

export interface FuseBinding {
  /** The op numbers of FuseRequest.op, by name. */
  readonly ops: Readonly<Record<OpName, number>>;
  readonly attrSlots: number;
  readonly attrSlot: Readonly<Record<AttrSlotName, number>>;
  readonly setattrSlot: Readonly<Record<SetattrSlotName, number>>;
  readonly setattrBits: Readonly<Record<SetattrBitName, number>>;
  readonly openFlags: Readonly<Record<OpenFlagName, number>>;
  /** Mounts and starts serving; throws when libfuse refuses the options or the mount. */
  mount(mountPath: string, options: string, config: MountConfig, dispatch: Dispatch, fenced: (id: number) => void): MountHandle;
  /** Detaches lazily; the session ends with a DESTROY dispatch, after which dispose() frees it. */
  unmount(mount: MountHandle): void;
  dispose(mount: MountHandle): void;
  /** Whether the mount keeps Node's event loop alive. */
  ref(mount: MountHandle, keepAlive: boolean): void;
  /*
   * Each reply returns whether the kernel took it: false for a handle that names no request
   * (answered already, or its mount disposed), or a request whose caller was interrupted.
   */
  replyErr(handle: RequestHandle, errno: number): boolean;
  /** node 0 with a timeout caches "no such name" in the kernel. */
  replyEntry(handle: RequestHandle, node: number, attr: Float64Array, entryTimeout: number, attrTimeout: number): boolean;
  /** False: the kernel never got `fh`, and will not release it: the caller does. */
  replyCreate(handle: RequestHandle, node: number, attr: Float64Array, entryTimeout: number, attrTimeout: number, fh: number, openFlags: number): boolean;
  replyAttr(handle: RequestHandle, attr: Float64Array, timeout: number): boolean;
  /** False: the kernel never got `fh`, and will not release it: the caller does. */
  replyOpen(handle: RequestHandle, fh: number, openFlags: number): boolean;
  replyWrite(handle: RequestHandle, count: number): boolean;
  replyLseek(handle: RequestHandle, offset: number): boolean;
  replyBuf(handle: RequestHandle, data: Buffer, length: number): boolean;
  /** Read data in pieces (at most 8), given to the kernel as one reply without joining them first. */
  replyIov(handle: RequestHandle, pieces: Buffer[]): boolean;
  replyReadlink(handle: RequestHandle, target: Buffer): boolean;
  replyXattrSize(handle: RequestHandle, size: number): boolean;
  /** bsize, frsize, blocks, bfree, bavail, files, ffree, namemax. */
  replyStatfs(handle: RequestHandle, fields: Float64Array): boolean;
  /** Entries from the first until `size` bytes are full; returns how many went in. */
  replyDir(handle: RequestHandle, plus: boolean, size: number, names: Buffer[], attrs: Float64Array,
    nodes: Float64Array, offsets: Float64Array, entryTimeout: number, attrTimeout: number): number;
  /** Cache invalidations, sent in order by the binding's notifier thread. */
  invalInode(mount: MountHandle, node: number, offset: number, length: number): void;
  invalEntry(mount: MountHandle, parent: number, name: Buffer): void;
  notifyDelete(mount: MountHandle, parent: number, child: number, name: Buffer): void;
  /**
   * `data` into the page cache of `node` at `offset` (notify_store), in order with the
   * invalidations: pages it covers from their start to their end, or to the end of the file,
   * are then up to date. Returns the note's place in the queue; undefined once disposed.
   */
  storeData(mount: MountHandle, node: number, offset: number, data: Uint8Array): number | undefined;
  /** The place in the queue (storeData's number) of the last note the notifier thread sent; 0 before any. */
  notesSent(mount: MountHandle): number;
  /** `fenced(id)` is called once every invalidation queued before this one was sent. */
  fence(mount: MountHandle, id: number): void;
  /** The poll events (mount-fs.ts PollEvents) open file `fh` is ready for. */
  replyPoll(handle: RequestHandle, revents: number): boolean;
  /** Open file `fh` became ready: a poll(2) waiting on it asks again (once: the kernel asks anew). */
  notifyPoll(mount: MountHandle, fh: number): void;
  /** Whether the caller of this unanswered request got a signal meanwhile (it then wants EINTR). */
  interrupted(handle: RequestHandle): boolean;
}

export class BindingMissingError extends Error {
  override name = 'BindingMissingError';
}

let loaded: FuseBinding | undefined;

/** The binding next to our compiled code (dist/native/), built by `npm run build`. */
export function fuseBinding(): FuseBinding {
  if (loaded) return loaded;
  const file = fileURLToPath(new URL('../../native/splitbrain-fuse.node', import.meta.url));
  if (!existsSync(file)) {
    throw new BindingMissingError(`the FUSE binding ${file} is missing: run scripts/setup.sh (it needs libfuse3-dev)`);
  }
  const native = createRequire(import.meta.url)(file) as NativeBinding;
  const theirs = Object.keys(native.ops ?? {}).sort().join(' ');
  const ours = [...OP_NAMES].sort().join(' ');
  if (theirs !== ours) {
    throw new BindingMissingError(`the FUSE binding ${file} names other operations than this code (${theirs || 'none'}): rebuild it (npm run build)`);
  }
  // The module's own functions are not enumerable (nor writable): the wrapper inherits them.
  const mount: FuseBinding['mount'] = (mountPath, options, config, dispatch, fenced) =>
    native.mount(mountPath, options, config, byName(dispatch), fenced);
  const binding = Object.create(native, { mount: { value: mount } }) as FuseBinding;
  loaded = binding;
  return loaded;
}
