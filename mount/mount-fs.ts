/**
 * What the FUSE adapter asks of a filesystem: one async method per kernel operation, throwing
 * a SlaveError (or any error with an errno name) on failure. RemoteFs implements it over the
 * protocol; the adapter alone knows the FUSE binding, and turns the kernel's nodes into paths.
 *
 * `path` is null for operations on an open file whose name was unlinked while it was open.
 * `caller` is the process the kernel asks for: the slave checks and owns as that caller.
 *
 * A filesystem extends MountFsBase and implements only what it serves: every other operation
 * answers ENOSYS, as a kernel filesystem without it would.
 */
import { SlaveError, type Attr, type OpReply, type TimeSpec } from '../protocol/index.js';
import type { FuseCaller } from './callers.js';
import type { ShownLink } from './symlink-view.js';

export type Statfs = OpReply<'fs.statfs'>;

/** poll(2)'s bits, as `poll` answers them (and a FUSE poll reply takes them). */
export const PollEvents = { IN: 0x001, OUT: 0x004, ERR: 0x008, HUP: 0x010 } as const;

/**
 * One name of a listing: its attributes where the filesystem has them (the kernel then caches
 * them with the name: readdirplus), else at least its inode number where known (d_ino).
 */
export interface DirEntry {
  name: string;
  attr: Attr | null;
  ino?: number;
}

export interface MountFs {
  getattr(path: string, caller: FuseCaller): Promise<Attr>;
  fgetattr(path: string | null, fh: number, caller: FuseCaller): Promise<Attr>;
  access(path: string, mode: number, caller: FuseCaller): Promise<void>;
  statfs(path: string, caller: FuseCaller): Promise<Statfs>;
  /** The directory's entries, without '.' and '..'. */
  readdir(path: string, caller: FuseCaller): Promise<DirEntry[]>;
  open(path: string, flags: number, caller: FuseCaller): Promise<number>;
  /** May `caller` (never root: the adapter lets root through) open the directory? Asked only where the kernel does not check. */
  opendir?(path: string, flags: number, caller: FuseCaller): Promise<void>;
  create(path: string, flags: number, mode: number, caller: FuseCaller): Promise<{ fh: number; attr: Attr }>;
  /** Fills `target` (at most `length` bytes) and returns the count; 0 at end of file. */
  read(path: string | null, fh: number, target: Buffer, length: number, offset: number, caller: FuseCaller): Promise<number>;
  /**
   * The same read, answered with the filesystem's own bytes (at most `length` in all, in order;
   * none at end of file, at most 8 pieces) instead of a copy into the adapter's buffer: they may
   * be views of memory it keeps, which must not change until the adapter has answered the
   * kernel (it does so at once).
   */
  readData?(path: string | null, fh: number, length: number, offset: number, caller: FuseCaller): Promise<Buffer[]>;
  /** `data` is only valid until the promise settles: keep a copy, not the buffer. */
  write(path: string | null, fh: number, data: Buffer, length: number, offset: number, caller: FuseCaller): Promise<number>;
  flush(path: string | null, fh: number, caller: FuseCaller): Promise<void>;
  fsync(path: string | null, fh: number, datasync: boolean, caller: FuseCaller): Promise<void>;
  release(path: string | null, fh: number, caller: FuseCaller): Promise<void>;
  /**
   * The attribute changes (truncate, chmod, chown, utimens) may return the attributes the kernel
   * is to get now; none: the adapter asks getattr.
   */
  truncate(path: string, size: number, caller: FuseCaller): Promise<Attr | void>;
  ftruncate(path: string | null, fh: number, size: number, caller: FuseCaller): Promise<void>;
  /**
   * fallocate(2) of an open file: `mode` 0 (allocate and grow), or Linux's KEEP_SIZE, PUNCH_HOLE
   * and ZERO_RANGE bits (the kernel hands a FUSE filesystem no others). ENOSYS: never again asked.
   */
  fallocate(path: string | null, fh: number, mode: number, offset: number, length: number, caller: FuseCaller): Promise<void>;
  /** lseek(2) with SEEK_DATA (3) or SEEK_HOLE (4): where the slave's file has the next data or hole. ENOSYS: never again asked. */
  seekData(path: string | null, fh: number, offset: number, whence: number, caller: FuseCaller): Promise<number>;
  /**
   * copy_file_range(2) from open file `fh` to open file `fhOut` (`pathOut` its name): how many
   * bytes (0: the end of `fh`'s file). ENOSYS: never again asked (the kernel copies by read and write).
   */
  copyRange(
    path: string | null, fh: number, offset: number, pathOut: string | null, fhOut: number, offsetOut: number, length: number, caller: FuseCaller,
  ): Promise<number>;
  /**
   * `otherName`: another path of the same file the mount knows (a hard link), which what is
   * kept by the removed name (open files, written data not yet durable) moves to.
   */
  unlink(path: string, caller: FuseCaller, otherName?: string): Promise<void>;
  /**
   * 'same': both names were links to one file, which rename(2) leaves as they were (POSIX).
   * `flag`: renameat2's RENAME_NOREPLACE (EEXIST if `to` exists) or RENAME_EXCHANGE (the two
   * names swap files; ENOENT unless both exist); EINVAL where not served.
   */
  rename(from: string, to: string, caller: FuseCaller, flag?: RenameFlag): Promise<void | 'same'>;
  /** Returns the new name's attributes. */
  link(existing: string, path: string, caller: FuseCaller): Promise<Attr>;
  /** Returns the new name's attributes. */
  symlink(target: string, path: string, caller: FuseCaller): Promise<Attr>;
  /** The target shown to the kernel, and whether it may keep it (symlink-view.ts). */
  readlink(path: string, caller: FuseCaller): Promise<ShownLink>;
  /** Returns the new name's attributes. */
  mkdir(path: string, mode: number, caller: FuseCaller): Promise<Attr>;
  rmdir(path: string, caller: FuseCaller): Promise<void>;
  chmod(path: string, mode: number, caller: FuseCaller): Promise<Attr | void>;
  /** -1 keeps the id, as chown(2) does. */
  chown(path: string, uid: number, gid: number, caller: FuseCaller): Promise<Attr | void>;
  utimens(path: string, atime: TimeSpec, mtime: TimeSpec, caller: FuseCaller): Promise<Attr | void>;
  /** Returns the new name's attributes. */
  mknod(path: string, mode: number, rdev: number, caller: FuseCaller): Promise<Attr>;
  /** The value, or a SlaveError ENODATA when the attribute is absent. */
  getxattr(path: string, name: string, caller: FuseCaller): Promise<Buffer>;
  /** Whether getxattr would answer ENODATA now, from what the filesystem holds: asked first, without waiting. */
  xattrKnownAbsent?(path: string, name: string, caller: FuseCaller): boolean;
  /** `value` is only valid until the promise settles. `flags`: XATTR_CREATE 1, XATTR_REPLACE 2. */
  setxattr(path: string, name: string, value: Buffer, flags: number, caller: FuseCaller): Promise<void>;
  listxattr(path: string, caller: FuseCaller): Promise<string[]>;
  removexattr(path: string, name: string, caller: FuseCaller): Promise<void>;
  /**
   * poll(2) on open file `fh`: what it is ready for now (PollEvents), and, when `wake`
   * is given and it is not ready, `wake()` once it becomes so. Absent: always ready (files).
   */
  poll?(fh: number, wake: (() => void) | undefined): Promise<number>;
  /**
   * Whether the close of a file opened with `flags` (open(2)'s, not create's) has anything to
   * wait for or report: its data, a refusal the agent sent after the mount had answered. When
   * not, the kernel is told to send no flush for it (FOPEN_NOFLUSH). Absent: always.
   */
  closeWaits?(flags: number): boolean;
  /** fsync(2) of a directory: what was changed in it is applied, and any late refusal reported. */
  fsyncdir?(path: string, datasync: boolean, caller: FuseCaller): Promise<void>;
  /**
   * Whether attributes this filesystem returned are its guess, not yet confirmed (a change
   * answered before the slave made it): the kernel gets them with attribute timeout 0.
   */
  provisional?(attr: Attr): boolean;
  /** What the filesystem last knew of `path`'s attributes, without asking (none: unknown). */
  lastKnown?(path: string): Attr | undefined;
  /** Whether a getattr of `path` would be answered now from what the filesystem holds, waiting for nothing. */
  attrSettled?(path: string): boolean;
  /**
   * The filesystem drops set-user-ID and set-group-ID bits itself where Linux would on a write,
   * truncate or chown, so the kernel need not ask for the file's attributes before each of those
   * (mount/native/session.c says why that matters).
   */
  readonly dropsSetIdBits?: boolean;
  /**
   * flock(2) of open file `fh` on the slave, where the slave's own programs and other masters
   * see it: `op` is LOCK_SH, LOCK_EX or LOCK_UN, with LOCK_NB for a try (EWOULDBLOCK when held
   * elsewhere). A lock that waits resolves once taken, or rejects with EINTR once `interrupted()`
   * says the caller got a signal. Present and `servesFlock`: the kernel asks; otherwise it keeps
   * flock locks in its own table, seen on this master alone.
   */
  flock?(path: string | null, fh: number, op: number, interrupted: () => boolean, caller: FuseCaller): Promise<void>;
  readonly servesFlock?: boolean;
}

/** renameat2(2)'s flags a filesystem may serve. */
export type RenameFlag = 'noReplace' | 'exchange';

/** What an operation a filesystem does not serve answers. */
function unserved<T>(op: string): Promise<T> {
  return Promise.reject(new SlaveError('ENOSYS', `${op} is not served by this filesystem`));
}

/**
 * Every operation answers ENOSYS: a filesystem overrides what it serves. The optional ones
 * (opendir, readData, poll, fsyncdir, provisional) are absent, and the adapter does without them.
 */
export abstract class MountFsBase implements MountFs {
  getattr(_path: string, _caller: FuseCaller): Promise<Attr> { return unserved('getattr'); }
  fgetattr(_path: string | null, _fh: number, _caller: FuseCaller): Promise<Attr> { return unserved('fgetattr'); }
  access(_path: string, _mode: number, _caller: FuseCaller): Promise<void> { return unserved('access'); }
  statfs(_path: string, _caller: FuseCaller): Promise<Statfs> { return unserved('statfs'); }
  readdir(_path: string, _caller: FuseCaller): Promise<DirEntry[]> { return unserved('readdir'); }
  open(_path: string, _flags: number, _caller: FuseCaller): Promise<number> { return unserved('open'); }
  create(_path: string, _flags: number, _mode: number, _caller: FuseCaller): Promise<{ fh: number; attr: Attr }> { return unserved('create'); }
  read(_path: string | null, _fh: number, _target: Buffer, _length: number, _offset: number, _caller: FuseCaller): Promise<number> { return unserved('read'); }
  write(_path: string | null, _fh: number, _data: Buffer, _length: number, _offset: number, _caller: FuseCaller): Promise<number> { return unserved('write'); }
  flush(_path: string | null, _fh: number, _caller: FuseCaller): Promise<void> { return unserved('flush'); }
  fsync(_path: string | null, _fh: number, _datasync: boolean, _caller: FuseCaller): Promise<void> { return unserved('fsync'); }
  release(_path: string | null, _fh: number, _caller: FuseCaller): Promise<void> { return unserved('release'); }
  truncate(_path: string, _size: number, _caller: FuseCaller): Promise<Attr | void> { return unserved('truncate'); }
  ftruncate(_path: string | null, _fh: number, _size: number, _caller: FuseCaller): Promise<void> { return unserved('ftruncate'); }
  fallocate(_path: string | null, _fh: number, _mode: number, _offset: number, _length: number, _caller: FuseCaller): Promise<void> {
    return unserved('fallocate');
  }
  seekData(_path: string | null, _fh: number, _offset: number, _whence: number, _caller: FuseCaller): Promise<number> {
    return unserved('lseek');
  }
  copyRange(
    _path: string | null, _fh: number, _offset: number, _pathOut: string | null, _fhOut: number, _offsetOut: number, _length: number, _caller: FuseCaller,
  ): Promise<number> {
    return unserved('copy_file_range');
  }
  unlink(_path: string, _caller: FuseCaller): Promise<void> { return unserved('unlink'); }
  rename(_from: string, _to: string, _caller: FuseCaller, _flag?: RenameFlag): Promise<void | 'same'> { return unserved('rename'); }
  link(_existing: string, _path: string, _caller: FuseCaller): Promise<Attr> { return unserved('link'); }
  symlink(_target: string, _path: string, _caller: FuseCaller): Promise<Attr> { return unserved('symlink'); }
  readlink(_path: string, _caller: FuseCaller): Promise<ShownLink> { return unserved('readlink'); }
  mkdir(_path: string, _mode: number, _caller: FuseCaller): Promise<Attr> { return unserved('mkdir'); }
  rmdir(_path: string, _caller: FuseCaller): Promise<void> { return unserved('rmdir'); }
  chmod(_path: string, _mode: number, _caller: FuseCaller): Promise<Attr | void> { return unserved('chmod'); }
  chown(_path: string, _uid: number, _gid: number, _caller: FuseCaller): Promise<Attr | void> { return unserved('chown'); }
  utimens(_path: string, _atime: TimeSpec, _mtime: TimeSpec, _caller: FuseCaller): Promise<Attr | void> { return unserved('utimens'); }
  mknod(_path: string, _mode: number, _rdev: number, _caller: FuseCaller): Promise<Attr> { return unserved('mknod'); }
  getxattr(_path: string, _name: string, _caller: FuseCaller): Promise<Buffer> { return unserved('getxattr'); }
  setxattr(_path: string, _name: string, _value: Buffer, _flags: number, _caller: FuseCaller): Promise<void> { return unserved('setxattr'); }
  listxattr(_path: string, _caller: FuseCaller): Promise<string[]> { return unserved('listxattr'); }
  removexattr(_path: string, _name: string, _caller: FuseCaller): Promise<void> { return unserved('removexattr'); }
}
