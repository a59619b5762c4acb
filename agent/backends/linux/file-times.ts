/**
 * Setting file times to the nanosecond. Node cannot: fs.utimes, lutimes and futimes take
 * seconds as a double, and libuv turns that into a timespec truncated to microseconds
 * (uv__fs_to_timespec), so 1.002003004 s is set as 1.002003 s, and a 2024 time, whose
 * nanoseconds need 61 bits, cannot be a double at all. So utimensat(2) and futimens(2) are
 * called in libc (libc.ts). Where libc cannot be loaded (a slave without glibc), Node's
 * microsecond path is used, and logged once.
 */
import { futimesSync, lstatSync, fstatSync, lutimesSync } from 'node:fs';
import { timestampFromMs, type TimeSpec, type Timestamp } from '../../../protocol/index.js';
import { cPath, fsPath } from '../../host-path.js';
import { libc, libcFailure, libcProblem } from './libc.js';

/** utimensat's special nanosecond values (<sys/stat.h> on Linux). */
const UTIME_NOW = (1 << 30) - 1;
const UTIME_OMIT = (1 << 30) - 2;
const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;

interface Timespec { tv_sec: number; tv_nsec: number }

/** Why times are set to the microsecond only on this slave, or undefined: they are exact. */
export function exactTimesProblem(): string | undefined {
  const why = libcProblem();
  return why === undefined ? undefined : `file times are set to the microsecond only: ${why}`;
}

function timespecOf(spec: TimeSpec): Timespec {
  if (spec === 'now') return { tv_sec: 0, tv_nsec: UTIME_NOW };
  if (spec === 'omit') return { tv_sec: 0, tv_nsec: UTIME_OMIT };
  const time: Timestamp = typeof spec === 'number' ? timestampFromMs(spec) : spec;
  return { tv_sec: time.sec, tv_nsec: time.nsec };
}

/** Node's seconds for the fallback: 'omit' keeps the current time. */
function seconds(spec: TimeSpec, currentNs: bigint): number {
  if (spec === 'now') return Date.now() / 1000;
  if (spec === 'omit') return Number(currentNs) / 1e9;
  const time = typeof spec === 'number' ? timestampFromMs(spec) : spec;
  return time.sec + time.nsec / 1e9;
}

/** utimensat(path, times, AT_SYMLINK_NOFOLLOW) (`path` a host path, maybe with escaped bytes): a symlink's own times, as lutimes. */
export function setPathTimes(path: string, atime: TimeSpec, mtime: TimeSpec): void {
  const lib = libc();
  if (lib === null) {
    const host = fsPath(path);
    const st = lstatSync(host, { bigint: true });
    lutimesSync(host, seconds(atime, st.atimeNs), seconds(mtime, st.mtimeNs));
    return;
  }
  if (lib.utimensat(AT_FDCWD, cPath(path), [timespecOf(atime), timespecOf(mtime)], AT_SYMLINK_NOFOLLOW) !== 0) {
    throw libcFailure(lib, 'utimensat');
  }
}

/** futimens(fd, times). */
export function setFileTimes(fd: number, atime: TimeSpec, mtime: TimeSpec): void {
  const lib = libc();
  if (lib === null) {
    const st = fstatSync(fd, { bigint: true });
    futimesSync(fd, seconds(atime, st.atimeNs), seconds(mtime, st.mtimeNs));
    return;
  }
  if (lib.futimens(fd, [timespecOf(atime), timespecOf(mtime)]) !== 0) throw libcFailure(lib, 'futimens');
}
