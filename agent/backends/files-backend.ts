/**
 * What the files service (agent/fs/) asks of the slave's operating system: looking names up,
 * adding, removing and renaming them, attributes by path and by descriptor, open files, extended
 * attributes. The root jail, the caller checks and the read-only policy stay in agent/ and
 * agent/fs/; the system calls are here. One implementation per platform (linux/linux-files.ts).
 *
 * Paths are host paths as the jail resolves them, and names are read back in the same form: a
 * name that is not UTF-8 is a string in surrogateescape form (protocol/name-bytes.ts), which an
 * implementation hands its system calls as the name's bytes. A failure is thrown as Node's
 * ErrnoException, its `code` the errno's name (or a SlaveError carrying one), as node:fs throws.
 * Calls are synchronous unless they return a promise: fs/attr-ops.ts says why.
 */
import type { BigIntStats, Stats, StatsFs } from 'node:fs';
import type { FlockLock, TimeSpec } from '../../protocol/index.js';

export interface FilesBackend {
  // Looking up.

  /** lstat(2): a symlink's own attributes. `bigint`: times to the nanosecond, for the wire. */
  lstat(hostPath: string): Stats;
  lstat(hostPath: string, options: { bigint: true }): BigIntStats;
  /** stat(2): a symlink's target's attributes. */
  stat(hostPath: string): Stats;
  stat(hostPath: string, options: { bigint: true }): BigIntStats;
  /** Whether the path names anything, a symlink's target if it is one (never throws). */
  exists(hostPath: string): boolean;
  /** access(2) with the agent's own rights: `mode` as R_OK, W_OK, X_OK (or F_OK). */
  access(hostPath: string, mode: number): void;
  /** The symlink's target as it is stored. */
  readlink(hostPath: string): string;
  /** The names in a directory, '.' and '..' not among them. */
  readdir(hostPath: string): string[];
  /**
   * The paths filesystems are mounted on, in the agent's mount namespace: a listing does not
   * look at them by itself (one served by a mount of this very agent would wait for the agent,
   * a network one may hang), only a request for that name does.
   */
  mountPoints(): Set<string>;
  /** The filesystem holding the path: statfs(2). */
  statfs(hostPath: string): StatsFs;
  /** Whether the slave refuses hard links to another user's files (Linux's fs.protected_hardlinks). */
  hardlinksProtected(): boolean;

  // Adding, removing and renaming names. None follows a symlink in last place.

  /** mkdir(2). `mode` comes with the caller's umask applied by the master's kernel (the agent's own is 0). */
  mkdir(hostPath: string, mode: number): void;
  rmdir(hostPath: string): void;
  /**
   * unlink(2). A regular file that keeps another name: its attributes after (its link count and
   * change time moved), where the system can say; else undefined.
   */
  unlink(hostPath: string): BigIntStats | undefined;
  /** rename(2): replaces what `to` names, as rename(2) may. */
  rename(fromHostPath: string, toHostPath: string): void;
  /** renameat2(2) with RENAME_NOREPLACE: EEXIST, atomically, if `toHostPath` exists. */
  renameNoReplace(fromHostPath: string, toHostPath: string): void;
  /** renameat2(2) with RENAME_EXCHANGE: the two names swap files, atomically (both must exist). */
  renameExchange(fromHostPath: string, toHostPath: string): void;
  /** link(2): a second name for the file `existingHostPath` names. */
  link(existingHostPath: string, newHostPath: string): void;
  /** symlink(2): `target` stored as given, never resolved. */
  symlink(target: string, hostPath: string): void;
  /**
   * mknod(2): a regular file, FIFO, character or block device (`rdev` as the kernel passes it) or
   * Unix socket, as `mode`'s type bits say, with its permission bits; EEXIST where anything is.
   * Whether a caller may make one is the service's to decide, before.
   */
  mknod(hostPath: string, mode: number, rdev: number): Promise<void>;

  // Attributes by path.

  /** chmod(2), following a symlink. */
  chmod(hostPath: string, mode: number): void;
  /** lchown(2): a symlink's own owner. */
  lchown(hostPath: string, uid: number, gid: number): void;
  truncate(hostPath: string, size: number): void;
  /** A file's times, a symlink's own: utimensat(2) with AT_SYMLINK_NOFOLLOW, to the nanosecond where the platform can. */
  utimens(hostPath: string, atime: TimeSpec, mtime: TimeSpec): void;
  /**
   * Why file times are set less exactly than to the nanosecond on this slave, or undefined. Asks
   * for what setting them needs, so it is asked at the first time change, not at start.
   */
  exactTimesProblem(): string | undefined;

  // Open files.

  /**
   * Opens a file or directory for the service; the descriptor is the service's to close. `flags`
   * are the master's open flags, with O_CREAT and O_EXCL as the service wants them; `mode` a new
   * file's permission bits. Writes go where the service says (with O_APPEND the master's kernel
   * has placed them already), an append-only file opens all the same, a symlink in last place is
   * refused (ELOOP: the master resolved the path itself, so one there means its view is stale),
   * and open never waits (a FIFO, for its other end) nor makes a terminal the agent's.
   */
  openFile(hostPath: string, flags: number, mode?: number): number;
  fstat(fd: number): Stats;
  fstat(fd: number, options: { bigint: true }): BigIntStats;
  /** pread(2): how many bytes were read into `buffer` at `offset`, 0 at the end of the file. */
  read(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** pwrite(2): how many bytes of `data` (from `offset`) were written, which may be fewer than asked. */
  write(fd: number, data: Uint8Array, offset: number, length: number, position: number): number;
  fsync(fd: number): Promise<void>;
  fdatasync(fd: number): Promise<void>;
  ftruncate(fd: number, size: number): void;
  /**
   * fallocate(2): `mode` 0 (allocate, and grow the file), or KEEP_SIZE, PUNCH_HOLE (with
   * KEEP_SIZE) or ZERO_RANGE bits as Linux numbers them; EOPNOTSUPP where the slave cannot.
   */
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  /** lseek(2) with SEEK_DATA or SEEK_HOLE: the offset of the next data or hole (ENXIO: none). */
  seekData(fd: number, offset: number, whence: number): number;
  /** copy_file_range(2): up to `length` bytes from `fdIn` at `offIn` to `fdOut` at `offOut`; how many (0: the end of `fdIn`). */
  copyRange(fdIn: number, offIn: number, fdOut: number, offOut: number, length: number): number;
  /** flock(2) without waiting: false when another open file holds a lock in the way. */
  flock(fd: number, lock: FlockLock): boolean;
  fchmod(fd: number, mode: number): void;
  fchown(fd: number, uid: number, gid: number): void;
  /** futimens(2): as utimens, by descriptor. */
  futimens(fd: number, atime: TimeSpec, mtime: TimeSpec): void;
  /** Closes a descriptor off the agent's thread: closing a written file may wait for its filesystem. */
  close(fd: number): Promise<void>;
  /** Closes a descriptor at once: one just opened and turned down, never written. */
  closeNow(fd: number): void;

  // Extended attributes, a symlink's own (none of these follows one in last place).

  /** The attribute's value, or null where the file has none of that name (ENOENT where there is no file). */
  getxattr(hostPath: string, name: string): Buffer | null;
  /** Sets the attribute, made or replaced; XATTR_CREATE and XATTR_REPLACE are the service's to check. */
  setxattr(hostPath: string, name: string, value: Uint8Array): void;
  listxattr(hostPath: string): string[];
  /** Whether the path (a symlink's own) has any extended attribute; undefined where it cannot tell. */
  hasXattrs(hostPath: string): boolean | undefined;
  removexattr(hostPath: string, name: string): void;
  /**
   * The POSIX access ACL of the path as the kernel stores it, or null: none, no file, or a
   * filesystem without ACLs. Never throws: caller checks ask it of every directory they search.
   */
  accessAcl(hostPath: string): Buffer | null;
}
