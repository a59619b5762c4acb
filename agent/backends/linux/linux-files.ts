/**
 * The files service on Linux: node:fs, with every path given as its bytes where it is not UTF-8
 * (host-path.ts); file times by libc (file-times.ts), special files as mknod(2) would make them
 * (make-node.ts), extended attributes by @napi-rs/xattr (xattrs.ts).
 */
import {
  accessSync, chmodSync, close, closeSync, constants, existsSync, fchmodSync, fchownSync, fdatasync, fstatSync, fsync,
  ftruncateSync, lchownSync, linkSync, lstatSync, mkdirSync, openSync, read, readdirSync, readFileSync, readlinkSync,
  renameSync, rmdirSync, statSync, statfsSync, symlinkSync, truncateSync, unlinkSync, writeSync,
  type BigIntStats, type Stats,
} from 'node:fs';
import { constants as osConstants } from 'node:os';
import { promisify } from 'node:util';
import { FALLOC_FL_PUNCH_HOLE as PUNCH_HOLE, SEEK_DATA, SlaveError, errnoName, nameFromBytes, type FlockLock } from '../../../protocol/index.js';
import { O_PATH, cPath, fsName, fsPath } from '../../host-path.js';
import type { FilesBackend } from '../files-backend.js';
import { exactTimesProblem, setFileTimes, setPathTimes } from './file-times.js';
import { libc, libcFailure, libcFor } from './libc.js';
import { makeNode } from './make-node.js';
import { accessAcl, getxattr, hasAnyXattr, listxattr, removexattr, setxattr } from './xattrs.js';

/** renameat2's arguments, as Linux numbers them. */
const AT_FDCWD = -100;
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;

const readAsync = promisify(read);
const fsyncAsync = promisify(fsync);
const fdatasyncAsync = promisify(fdatasync);
const closeAsync = promisify(close);

const { O_APPEND, O_DIRECT, O_NOATIME, O_NOFOLLOW, O_NOCTTY, O_NONBLOCK } = constants;
const { EWOULDBLOCK } = osConstants.errno;

// The master writes at explicit offsets (its kernel already placed O_APPEND writes at the end),
// and never with O_DIRECT's alignment rules; O_NOATIME fails for files we do not own.
const STRIPPED = O_APPEND | O_DIRECT | O_NOATIME;
// Paths reaching us were resolved component by component by the master's kernel: a symlink in
// last place means the master's view is stale, and following it could leave the root. A FIFO
// waits in open(2) for its other end, and four such waits would hold every thread Node reads
// and syncs files with: O_NONBLOCK makes open(2) return at once whatever the path has become
// since the master looked. Linux ignores that flag for regular files and directories, so it
// changes nothing for what the service keeps open.
const ADDED = O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;
// Where O_PATH is unknown (host-path.ts), unlinkName reports nothing of a surviving inode.

/**
 * The fifth field of /proc/self/mountinfo, its octal escapes (space, tab, newline, backslash)
 * undone, as host paths (the bytes of a name that is not UTF-8 kept as host-path.ts keeps them).
 */
function mountPoints(): Set<string> {
  const points = new Set<string>();
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo').toString('latin1'); // one char per byte
  } catch {
    return points;
  }
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const bytes = Buffer.from(field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))), 'latin1');
    points.add(nameFromBytes(bytes));
  }
  return points;
}

/**
 * unlink(2); for a file with another name (a hard link), its attributes after (link count and
 * change time moved), read through an O_PATH descriptor opened before the name went: the master
 * keeps the other name's attributes without asking (git links every object it writes, then
 * unlinks the temporary name).
 */
function unlinkName(host: string): BigIntStats | undefined {
  const path = fsPath(host);
  let st: Stats | undefined;
  try {
    st = lstatSync(path);
  } catch {
    // unlink reports the error as unlink's
  }
  if (!st || st.nlink <= 1 || !st.isFile() || O_PATH === undefined) {
    unlinkSync(path);
    return undefined;
  }
  const fd = openSync(path, O_PATH | O_NOFOLLOW);
  try {
    unlinkSync(path);
    return fstatSync(fd, { bigint: true });
  } finally {
    closeSync(fd);
  }
}

function openFile(host: string, flags: number, mode?: number): number {
  try {
    return openSync(fsPath(host), (flags & ~STRIPPED) | ADDED, mode);
  } catch (err) {
    // An append-only file (chattr +a) opens for writing only with O_APPEND, which we strip. It
    // is safe to keep there: the master's kernel places every write of such an opener at the end.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM' || (flags & O_APPEND) === 0) throw err;
    return openSync(fsPath(host), (flags & ~STRIPPED) | ADDED | O_APPEND, mode);
  }
}

function stat(host: string): Stats;
function stat(host: string, options: { bigint: true }): BigIntStats;
function stat(host: string, options?: { bigint: true }): Stats | BigIntStats {
  return options ? statSync(fsPath(host), options) : statSync(fsPath(host));
}

function lstat(host: string): Stats;
function lstat(host: string, options: { bigint: true }): BigIntStats;
function lstat(host: string, options?: { bigint: true }): Stats | BigIntStats {
  return options ? lstatSync(fsPath(host), options) : lstatSync(fsPath(host));
}

function fstat(fd: number): Stats;
function fstat(fd: number, options: { bigint: true }): BigIntStats;
function fstat(fd: number, options?: { bigint: true }): Stats | BigIntStats {
  return options ? fstatSync(fd, options) : fstatSync(fd);
}

let protectedHardlinks: boolean | undefined;

/** fs.protected_hardlinks, read once (on by default on every current distribution). */
function hardlinksProtected(): boolean {
  if (protectedHardlinks === undefined) {
    try {
      protectedHardlinks = readFileSync('/proc/sys/fs/protected_hardlinks', 'utf8').trim() === '1';
    } catch {
      protectedHardlinks = false;
    }
  }
  return protectedHardlinks;
}

/**
 * fallocate(2) through libc (Node has none); a slave without it answers as a filesystem that
 * cannot. A range to allocate larger than the filesystem's free space and all the file holds
 * already is ENOSPC before it starts: ext4 would fill the slave's disk first, and leave it full.
 */
function fallocate(fd: number, mode: number, offset: number, length: number): void {
  const lib = libcFor('fallocate', 'EOPNOTSUPP');
  if ((mode & PUNCH_HOLE) === 0) {
    const free = statfsSync(`/proc/self/fd/${fd}`, { bigint: true });
    const room = free.bavail * free.bsize + fstatSync(fd, { bigint: true }).blocks * 512n;
    if (BigInt(length) > room) throw new SlaveError('ENOSPC', `fallocate of ${length} bytes: ${room} bytes free for it`);
  }
  if (lib.fallocate(fd, mode, offset, length) !== 0) throw libcFailure(lib, `fallocate ${offset}+${length} mode ${mode}`);
}

/**
 * lseek(2) for SEEK_DATA and SEEK_HOLE through libc (Node has none); where libc cannot be
 * loaded, as Linux answers for a filesystem that keeps no holes: all data, one hole at the end.
 */
function seekData(fd: number, offset: number, whence: number): number {
  const lib = libc();
  if (!lib) {
    const { size } = fstatSync(fd);
    if (offset >= size) throw new SlaveError('ENXIO', `lseek ${offset}: past the end of the file`);
    return whence === SEEK_DATA ? offset : size;
  }
  const found = Number(lib.lseek(fd, offset, whence));
  if (found < 0) throw libcFailure(lib, `lseek ${offset} whence ${whence}`);
  // A directory's or a device's end, not a file's (2^63 - 1 on ext4): not an offset the wire carries.
  if (!Number.isSafeInteger(found)) throw new SlaveError('EOVERFLOW', `lseek ${offset} whence ${whence}: ${found}`);
  return found;
}

/** renameat2(2) with RENAME_NOREPLACE through libc (Node has none); EINVAL without it, as a kernel without the flag. */
function renameNoReplace(from: string, to: string): void {
  const lib = libcFor('renameat2', 'EINVAL');
  if (lib.renameat2(AT_FDCWD, cPath(from), AT_FDCWD, cPath(to), RENAME_NOREPLACE) !== 0) throw libcFailure(lib, `rename ${from} to ${to}`);
}

/** renameat2(2) with RENAME_EXCHANGE through libc; EINVAL without it, as a kernel or filesystem without the flag. */
function renameExchange(from: string, to: string): void {
  const lib = libcFor('renameat2', 'EINVAL');
  if (lib.renameat2(AT_FDCWD, cPath(from), AT_FDCWD, cPath(to), RENAME_EXCHANGE) !== 0) throw libcFailure(lib, `exchange ${from} and ${to}`);
}

/** copy_file_range(2) through libc (Node has none); EOPNOTSUPP without it: the master copies itself. */
function copyRange(fdIn: number, offIn: number, fdOut: number, offOut: number, length: number): number {
  const lib = libcFor('copy_file_range', 'EOPNOTSUPP');
  const copied = Number(lib.copyFileRange(fdIn, [offIn], fdOut, [offOut], length, 0));
  if (copied < 0) throw libcFailure(lib, `copy_file_range of ${length} bytes`);
  return copied;
}

const FLOCK_OPERATION: Readonly<Record<FlockLock, number>> = { sh: 1, ex: 2, un: 8 }; // LOCK_SH, LOCK_EX, LOCK_UN
const LOCK_NB = 4;

/**
 * flock(2) through libc (Node has none), never waiting: the agent serves everyone from one
 * thread. False when another open file holds a lock in the way. Without libc, ENOLCK: what a
 * filesystem that cannot lock answers.
 */
export function flockNow(fd: number, lock: FlockLock): boolean {
  const lib = libcFor('flock', 'ENOLCK');
  if (lib.flock(fd, FLOCK_OPERATION[lock] | LOCK_NB) === 0) return true;
  const failure = libcFailure(lib, `flock ${lock}`);
  if (failure.errnoName === errnoName(EWOULDBLOCK)) return false;
  throw failure;
}

export function linuxFiles(): FilesBackend {
  return {
    lstat,
    stat,
    exists: (host) => existsSync(fsPath(host)),
    access: (host, mode) => accessSync(fsPath(host), mode),
    readlink: (host) => nameFromBytes(readlinkSync(fsPath(host), { encoding: 'buffer' })),
    readdir: (host) => readdirSync(fsPath(host), { encoding: 'buffer' }).map((bytes) => nameFromBytes(bytes)),
    mountPoints,
    statfs: (host) => statfsSync(fsPath(host)),
    hardlinksProtected,

    mkdir: (host, mode) => mkdirSync(fsPath(host), mode),
    rmdir: (host) => rmdirSync(fsPath(host)),
    unlink: unlinkName,
    rename: (from, to) => renameSync(fsPath(from), fsPath(to)),
    renameNoReplace,
    renameExchange,
    link: (existing, host) => linkSync(fsPath(existing), fsPath(host)),
    symlink: (target, host) => symlinkSync(fsName(target), fsPath(host)),
    mknod: makeNode,

    chmod: (host, mode) => chmodSync(fsPath(host), mode),
    lchown: (host, uid, gid) => lchownSync(fsPath(host), uid, gid),
    truncate: (host, size) => truncateSync(fsPath(host), size),
    utimens: setPathTimes,
    exactTimesProblem,

    openFile,
    fstat,
    read: async (fd, buffer, offset, length, position) => (await readAsync(fd, buffer, offset, length, position)).bytesRead,
    write: (fd, data, offset, length, position) => writeSync(fd, data, offset, length, position),
    fsync: (fd) => fsyncAsync(fd),
    fdatasync: (fd) => fdatasyncAsync(fd),
    ftruncate: (fd, size) => ftruncateSync(fd, size),
    fallocate,
    seekData,
    copyRange,
    flock: flockNow,
    fchmod: (fd, mode) => fchmodSync(fd, mode),
    fchown: (fd, uid, gid) => fchownSync(fd, uid, gid),
    futimens: setFileTimes,
    close: (fd) => closeAsync(fd),
    closeNow: (fd) => closeSync(fd),

    getxattr, setxattr, listxattr, removexattr, accessAcl,
    hasXattrs: hasAnyXattr,
  };
}
