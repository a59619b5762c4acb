/**
 * Directories of the export root already verified to lie inside it, so that resolving a path
 * checks only the components not verified before: normally none, as a request names something in
 * a directory used a moment ago. Without it, every request realpath'd its whole path (one lstat
 * per component, each walking the path so far: 1.3 ms per call at depth 200).
 *
 * A directory is verified when it was reached from a verified one (the root is) without a
 * symlink: each component below is lstat'd and must be a real directory. Only paths reached that
 * way are kept, so a directory's host path is its slave path under the root, and its dev and
 * inode numbers say whether it is still what was verified:
 *  - at every use, the deepest verified directory on the path is lstat'd again (one call): a
 *    symlink, file or other directory swapped in for it is not taken;
 *  - the agent forgets a directory and all below it when it renames or removes it itself
 *    (`forgetPrefix`, which a change feed may call too);
 *  - entries expire after VERIFIED_TTL_MS: then the whole path is checked again, so a process
 *    on the slave that moves a verified directory's ancestor out of the root and puts a symlink
 *    in its place is noticed within that time, as the search checks notice a changed mode
 *    (caller-access.ts). Such a process could race a realpath too (root-jail.ts).
 */
import { lstatSync, type BigIntStats } from 'node:fs';
import { posix } from 'node:path';
import { fsPath } from './host-path.js';
import { isNormalSlavePath, normalSlavePath } from './slave-path.js';

export const VERIFIED_TTL_MS = 1000;
const MAX_VERIFIED = 8192;

interface Verified {
  dev: bigint;
  ino: bigint;
  expires: number;
}

function lstatOrUndefined(hostPath: string): BigIntStats | undefined {
  try {
    return lstatSync(fsPath(hostPath), { bigint: true });
  } catch {
    return undefined;
  }
}

export class VerifiedDirs {
  private readonly dirs = new Map<string, Verified>();

  /** `hostJoin`: the host path of a slave path, with no resolution. */
  constructor(private readonly hostJoin: (slavePath: string) => string, private readonly ttlMs = VERIFIED_TTL_MS) {}

  /**
   * Whether `slaveDir` (normalised) is a directory reached from the root without a symlink: then
   * its host path is `hostJoin(slaveDir)`. False for anything else (a symlink on the way, a
   * missing directory, a path not in normal form): the caller resolves such paths the slow way.
   */
  verify(slaveDir: string): boolean {
    if (slaveDir === '/') return true;
    // `hostJoin` of '/d/' or '/d/../x' would be resolved by the host, through whatever is there.
    if (!isNormalSlavePath(slaveDir)) return false;
    const now = Date.now();
    const unverified: string[] = [];
    for (let dir = slaveDir; dir !== '/'; dir = posix.dirname(dir)) {
      const known = this.dirs.get(dir);
      if (known !== undefined && known.expires > now) {
        if (this.unchanged(dir, known)) break;
        this.forgetPrefix(dir);
      }
      unverified.push(dir);
    }
    for (let i = unverified.length - 1; i >= 0; i--) {
      const dir = unverified[i] as string;
      const st = lstatOrUndefined(this.hostJoin(dir));
      if (st === undefined || !st.isDirectory()) return false;
      if (this.dirs.size >= MAX_VERIFIED) this.dirs.clear();
      this.dirs.set(dir, { dev: st.dev, ino: st.ino, expires: now + this.ttlMs });
    }
    return true;
  }

  /** Forgets `slaveDir` and every directory below it: they may be elsewhere now, or gone. */
  forgetPrefix(slaveDir: string): void {
    const dir = normalSlavePath(slaveDir); // '/d/' must forget '/d' and all below
    if (dir === '/') {
      this.dirs.clear();
      return;
    }
    this.dirs.delete(dir);
    const below = `${dir}/`;
    for (const key of this.dirs.keys()) if (key.startsWith(below)) this.dirs.delete(key);
  }

  get size(): number {
    return this.dirs.size;
  }

  private unchanged(dir: string, known: Verified): boolean {
    const st = lstatOrUndefined(this.hostJoin(dir));
    return st !== undefined && st.isDirectory() && st.dev === known.dev && st.ino === known.ino;
  }
}
