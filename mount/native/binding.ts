/**
 * The typed face of splitbrain-fuse.node (splitbrain-fuse.c, built by scripts/setup.sh into
 * dist/native/): libfuse 3's low-level API. Only mount/fuse-adapter.ts imports this.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Kernel operations, as splitbrain-fuse.c numbers them. */
export const Op = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, MKNOD: 6, MKDIR: 7, UNLINK: 8,
  RMDIR: 9, SYMLINK: 10, RENAME: 11, LINK: 12, OPEN: 13, READ: 14, WRITE: 15, FLUSH: 16,
  RELEASE: 17, FSYNC: 18, OPENDIR: 19, READDIR: 20, RELEASEDIR: 21, STATFS: 22, SETXATTR: 23,
  GETXATTR: 24, LISTXATTR: 25, REMOVEXATTR: 26, ACCESS: 27, CREATE: 28, READDIRPLUS: 29,
  DESTROY: 30, POLL: 31,
} as const;

export type OpCode = (typeof Op)[keyof typeof Op];

/** libfuse's FUSE_SET_ATTR_* bits of a setattr. */
export const SetAttr = {
  MODE: 1 << 0, UID: 1 << 1, GID: 1 << 2, SIZE: 1 << 3, ATIME: 1 << 4, MTIME: 1 << 5,
  ATIME_NOW: 1 << 7, MTIME_NOW: 1 << 8,
} as const;

/** Bits of an open reply. */
export const OpenFlag = { DIRECT_IO: 1, KEEP_CACHE: 2, NONSEEKABLE: 4, CACHE_DIR: 8 } as const;

/**
 * Attributes as the binding takes them, ATTR_SLOTS numbers per node: ino, mode, nlink, uid, gid,
 * rdev, size, blocks, blksize, then atime, mtime and ctime as seconds and nanoseconds.
 */
export const ATTR_SLOTS = 15;

/** An opaque handle of one kernel request: answer it exactly once. */
export type RequestHandle = number;
/** An opaque handle of one mount. */
export type MountHandle = object & { readonly __mount: unique symbol };

/**
 * One kernel request. a/b/c by op: lookup/unlink/rmdir (parent in ino, name); forget (a:
 * nlookup); getattr (a: fh or -1); setattr (a: fh or -1, setattr: mode, uid, gid, size, atime s,
 * ns, mtime s, ns, to_set); mknod (a: mode, b: rdev); mkdir (a: mode); symlink (name, data:
 * target); rename (name, ino2: new parent, name2, a: flags); link (ino2: new parent, name);
 * open/opendir (a: flags); read/readdir(plus) (a: fh, b: size, c: offset); write (a: fh, c:
 * offset, data); flush/release/releasedir (a: fh, b: flags); fsync (a: fh, b: datasync);
 * setxattr (name, data, a: flags); getxattr (name, b: size); listxattr (b: size); access (a:
 * mask); create (a: mode, b: flags). A write's data is a view of memory the binding reuses for
 * the next writes: valid until the request is answered (a Uint8Array, not a Buffer).
 */
export type Dispatch = (
  handle: RequestHandle, op: OpCode, ino: number, uid: number, gid: number, pid: number,
  a: number, b: number, c: number, name: Buffer | undefined, name2: Buffer | undefined,
  data: Uint8Array | undefined, ino2: number, setattr: Float64Array | undefined,
) => void;

export interface MountConfig {
  /** The kernel checks POSIX ACLs (with default_permissions, which it then implies). */
  posixAcl: boolean;
  /** The kernel's writeback cache: writes are gathered in the page cache. */
  writeback: boolean;
  /** The kernel keeps symlink targets (dropped with the node's other caches on invalidation). */
  cacheSymlinks: boolean;
  /** Largest write the kernel sends (and read it asks for), at most 1 MiB. */
  maxWrite: number;
}

export interface FuseBinding {
  /** Mounts and starts serving; throws when libfuse refuses the options or the mount. */
  mount(mountPath: string, options: string, config: MountConfig, dispatch: Dispatch, fenced: (id: number) => void): MountHandle;
  /** Detaches lazily; the session ends with a DESTROY dispatch, after which dispose() frees it. */
  unmount(mount: MountHandle): void;
  dispose(mount: MountHandle): void;
  /** Whether the mount keeps Node's event loop alive. */
  ref(mount: MountHandle, keepAlive: boolean): void;
  replyErr(handle: RequestHandle, errno: number): void;
  /** node 0 with a timeout caches "no such name" in the kernel. */
  replyEntry(handle: RequestHandle, node: number, attr: Float64Array, entryTimeout: number, attrTimeout: number): void;
  replyCreate(handle: RequestHandle, node: number, attr: Float64Array, entryTimeout: number, attrTimeout: number, fh: number, openFlags: number): void;
  replyAttr(handle: RequestHandle, attr: Float64Array, timeout: number): void;
  replyOpen(handle: RequestHandle, fh: number, openFlags: number): void;
  replyWrite(handle: RequestHandle, count: number): void;
  replyBuf(handle: RequestHandle, data: Buffer, length: number): void;
  /** Read data in pieces (at most 8), given to the kernel as one reply without joining them first. */
  replyIov(handle: RequestHandle, pieces: Buffer[]): void;
  replyReadlink(handle: RequestHandle, target: Buffer): void;
  replyXattrSize(handle: RequestHandle, size: number): void;
  /** bsize, frsize, blocks, bfree, bavail, files, ffree, namemax. */
  replyStatfs(handle: RequestHandle, fields: Float64Array): void;
  /** Entries from the first until `size` bytes are full; returns how many went in. */
  replyDir(handle: RequestHandle, plus: boolean, size: number, names: Buffer[], attrs: Float64Array,
    nodes: Float64Array, offsets: Float64Array, entryTimeout: number, attrTimeout: number): number;
  /** Cache invalidations, sent in order by the binding's notifier thread. */
  invalInode(mount: MountHandle, node: number, offset: number, length: number): void;
  invalEntry(mount: MountHandle, parent: number, name: Buffer): void;
  notifyDelete(mount: MountHandle, parent: number, child: number, name: Buffer): void;
  /** `fenced(id)` is called once every invalidation queued before this one was sent. */
  fence(mount: MountHandle, id: number): void;
  /** The poll events (mount-fs.ts PollEvents) open file `fh` is ready for (POLL: a = fh, b = 1 when the kernel wants notifyPoll). */
  replyPoll(handle: RequestHandle, revents: number): void;
  /** Open file `fh` became ready: a poll(2) waiting on it asks again (once: the kernel asks anew). */
  notifyPoll(mount: MountHandle, fh: number): void;
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
  loaded = createRequire(import.meta.url)(file) as FuseBinding;
  return loaded;
}
