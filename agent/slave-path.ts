/**
 * The one form of a slave path the jail and its cache of verified directories work on: absolute,
 * no empty, `.` or `..` components, and no trailing slash. A trailing slash is not cosmetic on the
 * host: the kernel follows a symlink in the last component before it (`lstat("link/")` stats the
 * target), so a host path built from `/rel-out/` named what `rel-out` points to, outside the root
 * (found by test/integration/hostile-input.test.ts, seed 2617279891). `x/` means what `x` means,
 * as the jail's walk always read it; the op's own rule decides whether the last is followed.
 */
import { posix } from 'node:path';

/** `slavePath` in normal form; leading `..` clamp at `/`. */
export function normalSlavePath(slavePath: string): string {
  const normal = posix.normalize(`/${slavePath}`);
  // posix.normalize collapses repeated slashes, so at most one is left at the end.
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
}

/** Whether `slavePath` is already in normal form. */
export function isNormalSlavePath(slavePath: string): boolean {
  return normalSlavePath(slavePath) === slavePath;
}
