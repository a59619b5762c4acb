/**
 * The export root: every slave path a request names is resolved inside it, so neither `..` nor
 * a symlink (absolute, relative or a chain of them) can lead an operation outside the root.
 *
 * Fast path: the lexically normalised path's (slave-path.ts) parent is a directory verified before, reached
 * without a symlink (verified-dirs.ts: one lstat, whatever the depth). Else it is realpath'd
 * and accepted when it lies inside the root. Only when it does not (a symlink points out, or is
 * dangling on the host) do we walk the components ourselves with chroot semantics: absolute
 * symlinks start again at the root and `..` stops there, as RESOLVE_IN_ROOT does.
 *
 * A process on the slave that swaps a directory for a symlink between our check and the syscall
 * could still race us; Node has no openat2(), so this is as strong as a user-space server gets.
 *
 * Resolution is synchronous: a realpath or lstat on a local disk takes microseconds, a trip
 * through libuv's thread pool costs a hundred (see docs/performance.md).
 */
import { lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { posix } from 'node:path';
import { SlaveError, nameFromBytes } from '../protocol/index.js';
import { fsPath } from './host-path.js';
import { normalSlavePath } from './slave-path.js';
import { VerifiedDirs } from './verified-dirs.js';

const MAX_SYMLINKS = 40; // Linux's own limit before ELOOP.

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(fsPath(path));
  } catch {
    return undefined;
  }
}

export class RootJail {
  private readonly verified: VerifiedDirs;

  private constructor(readonly root: string) {
    this.verified = new VerifiedDirs((slavePath) => this.hostJoin(slavePath));
  }

  /** `root` must exist and be a directory; it is canonicalised once. */
  static open(root: string): RootJail {
    const real = realpathSync.native(root);
    const st = lstatSync(real);
    if (!st.isDirectory()) throw new SlaveError('ENOTDIR', `export root ${root} is not a directory`);
    return new RootJail(real);
  }

  get isHostRoot(): boolean {
    return this.root === '/';
  }

  /**
   * The host path for `slavePath`. The last component is not followed when `followLast` is false
   * (lstat, unlink, rename, readlink, lchown...), and it need not exist.
   */
  resolve(slavePath: string, followLast = false): string {
    const normal = normalSlavePath(slavePath); // never a trailing slash: the host would follow it
    if (normal === '/') return this.root;
    // Exporting '/' needs no jail: whatever a path or symlink names is inside it.
    if (this.isHostRoot) return normal;
    const parent = posix.dirname(normal);
    const candidate = this.verified.verify(parent) ? this.hostJoin(normal) : this.realParent(normal);
    if (candidate === undefined) return this.walk(normal, followLast);
    if (!followLast) return candidate;
    const st = lstatOrUndefined(candidate);
    if (st?.isSymbolicLink()) return this.walk(this.toSlave(candidate), true);
    return candidate;
  }

  /**
   * The host path of directory `slaveDir` when it was reached from the root without a symlink
   * (verified-dirs.ts: one lstat); undefined otherwise (then `resolve` says where it leads).
   */
  directDir(slaveDir: string): string | undefined {
    if (this.isHostRoot) return undefined;
    return this.verified.verify(slaveDir) ? this.hostJoin(slaveDir) : undefined;
  }

  /**
   * Forgets what was verified of `slaveDir` and below (agent/fs calls it when it renames or
   * removes a directory; a change feed of the slave's may call it too).
   */
  forgetPrefix(slaveDir: string): void {
    this.verified.forgetPrefix(slaveDir);
  }

  /** The host path of `normal` by realpath of its parent; undefined when that leads outside. */
  private realParent(normal: string): string | undefined {
    const parent = posix.dirname(normal);
    const name = posix.basename(normal);
    let hostParent: string | undefined;
    try {
      hostParent = nameFromBytes(realpathSync.native(fsPath(this.hostJoin(parent)), { encoding: 'buffer' }));
    } catch {
      hostParent = undefined; // maybe a symlink that only makes sense inside the jail: walk it
    }
    if (hostParent === undefined || !this.contains(hostParent)) return undefined;
    return hostParent === '/' ? `/${name}` : `${hostParent}/${name}`;
  }

  /** The slave path (relative to the root) of a host path inside the root. */
  toSlave(hostPath: string): string {
    if (this.isHostRoot) return hostPath;
    return hostPath === this.root ? '/' : hostPath.slice(this.root.length);
  }

  private hostJoin(slavePath: string): string {
    if (this.isHostRoot) return slavePath;
    return slavePath === '/' ? this.root : `${this.root}${slavePath}`;
  }

  private contains(hostPath: string): boolean {
    return this.isHostRoot || hostPath === this.root || hostPath.startsWith(`${this.root}/`);
  }

  private walk(slavePath: string, followLast: boolean): string {
    let done: string[] = [];
    let todo = slavePath.split('/').filter((c) => c.length > 0);
    let links = 0;
    while (todo.length > 0) {
      const component = todo.shift() as string;
      if (component === '.') continue;
      if (component === '..') {
        done.pop();
        continue;
      }
      const isLast = todo.length === 0;
      const host = this.hostJoin(`/${[...done, component].join('/')}`);
      if (isLast && !followLast) {
        done.push(component);
        break;
      }
      let st;
      try {
        st = lstatSync(fsPath(host));
      } catch (err) {
        // The last component may be about to be created.
        if (!isLast || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      if (st?.isSymbolicLink()) {
        if (++links > MAX_SYMLINKS) throw new SlaveError('ELOOP', `too many symlinks in ${slavePath}`);
        const target = nameFromBytes(readlinkSync(fsPath(host), { encoding: 'buffer' }));
        if (target.startsWith('/')) done = [];
        todo = [...target.split('/').filter((c) => c.length > 0), ...todo];
        continue;
      }
      if (st && !isLast && !st.isDirectory()) throw new SlaveError('ENOTDIR', `not a directory: ${slavePath}`);
      done.push(component);
    }
    return this.hostJoin(`/${done.join('/')}`);
  }
}
