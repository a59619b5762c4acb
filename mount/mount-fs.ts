/**
 * What the FUSE adapter asks of a filesystem: one async method per kernel operation, throwing
 * a SlaveError (or any error with an errno name) on failure. RemoteFs implements it over the
 * protocol; the adapter alone knows fuse-native.
 *
 * `path` is null for operations on an open file whose name was unlinked while it was open.
 */
import type { Attr, OpReply, TimeSpec } from '../protocol/index.js';

export type Statfs = OpReply<'fs.statfs'>;

export interface MountFs {
  getattr(path: string): Promise<Attr>;
  fgetattr(path: string | null, fh: number): Promise<Attr>;
  access(path: string, mode: number): Promise<void>;
  statfs(path: string): Promise<Statfs>;
  /** Names in the directory, without '.' and '..'. */
  readdir(path: string): Promise<string[]>;
  open(path: string, flags: number): Promise<number>;
  create(path: string, flags: number, mode: number): Promise<number>;
  /**
   * Fills `target` (at most `length` bytes) and returns the count; 0 at end of file.
   * `callerPid`: the process the read is for (0 when the kernel did not say).
   */
  read(path: string | null, fh: number, target: Buffer, length: number, offset: number, callerPid?: number): Promise<number>;
  /** `data` is only valid until the promise settles: keep a copy, not the buffer. */
  write(path: string | null, fh: number, data: Buffer, length: number, offset: number): Promise<number>;
  flush(path: string | null, fh: number): Promise<void>;
  fsync(path: string | null, fh: number, datasync: boolean): Promise<void>;
  release(path: string | null, fh: number): Promise<void>;
  truncate(path: string, size: number): Promise<void>;
  ftruncate(path: string | null, fh: number, size: number): Promise<void>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  link(existing: string, path: string): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
  readlink(path: string): Promise<string>;
  mkdir(path: string, mode: number): Promise<void>;
  rmdir(path: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  chown(path: string, uid: number, gid: number): Promise<void>;
  utimens(path: string, atime: TimeSpec, mtime: TimeSpec): Promise<void>;
  mknod(path: string, mode: number, rdev: number): Promise<void>;
  /** The value, or a SlaveError ENODATA when the attribute is absent. */
  getxattr(path: string, name: string): Promise<Buffer>;
  /** `value` is only valid until the promise settles. `flags`: XATTR_CREATE 1, XATTR_REPLACE 2. */
  setxattr(path: string, name: string, value: Buffer, flags: number): Promise<void>;
  listxattr(path: string): Promise<string[]>;
  removexattr(path: string, name: string): Promise<void>;
}
