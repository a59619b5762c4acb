/**
 * The libc calls the agent needs that Node does not make, through koffi (a maintained FFI whose
 * npm package ships its prebuilt binaries: no compiler, no code of ours in C): utimensat(2) and
 * futimens(2) for file times to the nanosecond (file-times.ts), fallocate(2), lseek(2), copy_file_range(2), renameat2(2) and flock(2) (linux-files.ts),
 * the l*xattr(2) calls for a file's extended attributes by its bytes (xattrs.ts), pipe2(2) and
 * fcntl(2) for a process's output pipes (output-pipes.ts), ioctl(2) for terminals (termios.ts).
 * This file is the agent's only importer of koffi.
 *
 * Synchronous calls only: koffi's asynchronous calls run on other threads, where errno would not
 * be ours to read. Where koffi or libc cannot be loaded (a slave without glibc), `libc()` is null,
 * `libcProblem()` says why, and each caller falls back to what Node can do.
 */
import { createRequire } from 'node:module';
import { SlaveError, errnoName } from '../../../protocol/index.js';

type KoffiFunction = (...args: unknown[]) => number;

export interface Libc {
  utimensat: KoffiFunction;
  futimens: KoffiFunction;
  /** fallocate(fd, mode, offset, length): 0, or -1 with errno. */
  fallocate: KoffiFunction;
  /** lseek(fd, offset, whence): the new offset, or -1 with errno. */
  lseek: KoffiFunction;
  /** renameat2(olddirfd, oldpath, newdirfd, newpath, flags): paths as host-path.ts's cPath gives them. */
  renameat2: KoffiFunction;
  /** copy_file_range(fdIn, [offIn], fdOut, [offOut], length, 0): bytes copied (the offsets move), or -1. */
  copyFileRange: KoffiFunction;
  /** llistxattr(path, list, size): with a null list and size 0, the bytes the names would take (0: none), or -1. */
  llistxattr: KoffiFunction;
  /** lgetxattr(path, name, value, size): a null value and size 0 ask for the value's length. */
  lgetxattr: KoffiFunction;
  lsetxattr: KoffiFunction;
  lremovexattr: KoffiFunction;
  /** flock(fd, operation): 0, or -1 with errno. */
  flock: KoffiFunction;
  /** pipe2(fds, flags): `fds` an array of two numbers, filled in. */
  pipe2: KoffiFunction;
  /** ioctl(fd, request, buffer): the argument is a pointer to `buffer`'s bytes. */
  ioctlBuffer(fd: number, request: number, buffer: Buffer): number;
  /** ioctl(fd, request, value): the argument is the number itself. */
  ioctlValue(fd: number, request: number, value: number): number;
  /** fcntl(fd, command, value): for commands whose argument is a number. */
  fcntlValue(fd: number, command: number, value: number): number;
  errno(): number;
}

/** Loaded at first use; null where it cannot be. */
let loaded: Libc | null | undefined;
let problem: string | undefined;

export function libc(): Libc | null {
  if (loaded !== undefined) return loaded;
  try {
    // Not a static import: an agent whose koffi cannot load still serves, without these calls.
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const lib = koffi.load('libc.so.6');
    koffi.struct('splitbrain_timespec', { tv_sec: 'int64_t', tv_nsec: 'long' });
    const ioctlBuffer = lib.func('int ioctl(int fd, unsigned long request, _Inout_ uint8_t *arg)') as KoffiFunction;
    const ioctlValue = lib.func('ioctl', 'int', ['int', 'unsigned long', 'long']) as KoffiFunction;
    const fcntlValue = lib.func('fcntl', 'int', ['int', 'int', 'long']) as KoffiFunction;
    loaded = {
      utimensat: lib.func('int utimensat(int dirfd, const char *path, const splitbrain_timespec *times, int flags)') as KoffiFunction,
      futimens: lib.func('int futimens(int fd, const splitbrain_timespec *times)') as KoffiFunction,
      fallocate: lib.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)') as KoffiFunction,
      lseek: lib.func('int64_t lseek(int fd, int64_t offset, int whence)') as KoffiFunction,
      renameat2: lib.func('int renameat2(int olddirfd, const uint8_t *oldpath, int newdirfd, const uint8_t *newpath, unsigned int flags)') as KoffiFunction,
      copyFileRange: lib.func('int64_t copy_file_range(int fd_in, _Inout_ int64_t *off_in, int fd_out, _Inout_ int64_t *off_out, size_t len, unsigned int flags)') as KoffiFunction,
      llistxattr: lib.func('long llistxattr(const char *path, _Out_ uint8_t *list, size_t size)') as KoffiFunction,
      lgetxattr: lib.func('long lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)') as KoffiFunction,
      lsetxattr: lib.func('int lsetxattr(const char *path, const char *name, const uint8_t *value, size_t size, int flags)') as KoffiFunction,
      lremovexattr: lib.func('int lremovexattr(const char *path, const char *name)') as KoffiFunction,
      pipe2: lib.func('int pipe2(_Out_ int *fds, int flags)') as KoffiFunction,
      flock: lib.func('int flock(int fd, int operation)') as KoffiFunction,
      ioctlBuffer: (fd, request, buffer) => ioctlBuffer(fd, request, buffer),
      ioctlValue: (fd, request, value) => ioctlValue(fd, request, value),
      fcntlValue: (fd, command, value) => fcntlValue(fd, command, value),
      errno: () => koffi.errno(),
    };
  } catch (err) {
    problem = (err as Error).message;
    loaded = null;
  }
  return loaded;
}

/**
 * libc, for a call with no fallback in Node: where it cannot be loaded, `errno` (what a kernel
 * or filesystem without the call answers), saying why.
 */
export function libcFor(what: string, errno: string): Libc {
  const lib = libc();
  if (!lib) throw new SlaveError(errno, `${what}: libc cannot be loaded on this slave (${problem})`);
  return lib;
}

/** Why libc could not be loaded, or undefined. */
export function libcProblem(): string | undefined {
  libc();
  return problem;
}

/** The error of the call that just failed, as its errno. */
export function libcFailure(lib: Libc, what: string): SlaveError {
  const errno = errnoName(lib.errno());
  return new SlaveError(errno, `${what}: ${errno}`);
}
