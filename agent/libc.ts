/**
 * The calls the agent needs that Node does not have, made in libc through koffi (a maintained
 * FFI whose npm package ships prebuilt binaries: no compiler, no C of ours): utimensat(2) and
 * futimens(2) to set times to the nanosecond (fs/exact-times.ts), pipe2(2) for a process's
 * output pipes (proc/output-pipes.ts). This file is the only importer of koffi.
 *
 * Synchronous calls only: koffi's asynchronous calls run on other threads, where errno would
 * not be ours to read. Where koffi or libc cannot be loaded (a slave without glibc), `libc()`
 * is null and each caller falls back to what Node can do, and says why once.
 */
import { createRequire } from 'node:module';

type KoffiFunction = (...args: unknown[]) => number;

export interface Libc {
  utimensat: KoffiFunction;
  futimens: KoffiFunction;
  /** pipe2(fds, flags): `fds` an array of two numbers, filled in. */
  pipe2: KoffiFunction;
  errno(): number;
}

/** Loaded at first use; null where it cannot be. */
let loaded: Libc | null | undefined;
let problem: string | undefined;

export function libc(): Libc | null {
  if (loaded !== undefined) return loaded;
  try {
    // Not a static import: an agent whose koffi cannot load still serves.
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const lib = koffi.load('libc.so.6');
    koffi.struct('splitbrain_timespec', { tv_sec: 'int64_t', tv_nsec: 'long' });
    loaded = {
      utimensat: lib.func('int utimensat(int dirfd, const char *path, const splitbrain_timespec *times, int flags)') as KoffiFunction,
      futimens: lib.func('int futimens(int fd, const splitbrain_timespec *times)') as KoffiFunction,
      pipe2: lib.func('int pipe2(_Out_ int *fds, int flags)') as KoffiFunction,
      errno: () => koffi.errno(),
    };
  } catch (err) {
    problem = (err as Error).message;
    loaded = null;
  }
  return loaded;
}

/** Why libc could not be loaded, or undefined. */
export function libcProblem(): string | undefined {
  libc();
  return problem;
}
