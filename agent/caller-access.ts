/**
 * A root agent acts for the master process whose system call a request is (protocol/caller.ts):
 * it refuses what the slave's kernel would refuse that caller, with the same errno, and what the
 * caller creates becomes the caller's. The checks run here, on the slave's own inodes, rather
 * than in the master's kernel (`default_permissions`), because the master's kernel would first
 * ask the mount for the attributes of every directory on every path (docs/architecture.md).
 *
 * A root caller, a request without a caller (older masters, the agent's own work) and a non-root
 * agent (which acts as itself, as sftp-server does for sshfs) skip every check: the slave's
 * kernel applies the agent's own rights.
 */
import { chmodSync, lchownSync, lstatSync, statSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import {
  MAY_EXEC, MAY_WRITE, S_ISGID, S_ISUID, SlaveError, inGroup, isRoot, mayRemoveFrom, newOwner, permitsWithAcl,
  type Caller,
} from '../protocol/index.js';
import type { RootJail } from './root-jail.js';
import { fsPath } from './host-path.js';

/** The POSIX access ACL of a host path, or null (the files backend reads them: accessAcl). */
export type AclReader = (host: string) => Buffer | null;

/**
 * An ACL matters only where the mode's group class is not empty (acl_permission_check); a
 * symlink has none. Reading it costs a getxattr, for non-root callers only.
 */
function aclOf(readAcl: AclReader, host: string, mode: number): Buffer | null {
  if ((mode & 0o070) === 0 || (mode & 0o170000) === 0o120000) return null;
  return readAcl(host);
}

/** What search checks need of a directory. */
interface DirModes {
  mode: number;
  uid: number;
  gid: number;
  acl: Buffer | null;
  expires: number;
}

const DIR_MODES_TTL_MS = 1000;
const MAX_DIRS = 20_000;

/**
 * The modes and owners of directories that searches have looked at, kept for a second: a check
 * of a 200-deep path would otherwise stat 200 paths of growing length on every call (3 ms on
 * every call at that depth). The agent forgets them all when it changes a mode or an owner or
 * moves or removes a directory itself; a change by another process on the slave is seen within
 * DIR_MODES_TTL_MS, as the mount's own cache of attributes sees it (docs/architecture.md).
 */
export class SearchCache {
  private readonly dirs = new Map<string, DirModes>();

  constructor(readonly readAcl: AclReader) {}

  get(dir: string, now: number): DirModes | undefined {
    const hit = this.dirs.get(dir);
    if (hit && hit.expires > now) return hit;
    let st: Stats;
    try {
      st = statSync(fsPath(dir));
    } catch {
      return undefined;
    }
    // A file where a directory should be: the operation answers ENOTDIR, as the kernel would
    // before it asked for search permission on it.
    if (!st.isDirectory()) return undefined;
    if (this.dirs.size >= MAX_DIRS) this.dirs.clear();
    const fresh = { mode: st.mode, uid: st.uid, gid: st.gid, acl: aclOf(this.readAcl, dir, st.mode), expires: now + DIR_MODES_TTL_MS };
    this.dirs.set(dir, fresh);
    return fresh;
  }

  clear(): void {
    this.dirs.clear();
  }
}

export class CallerAccess {
  /** Whether requests are checked: a non-root caller of a root agent. */
  readonly checking: boolean;

  /**
   * `actsForCallers`: the agent runs as root, so it can (and must) act as each caller. Without a
   * caller, it acts as itself.
   */
  constructor(
    readonly caller: Caller | undefined,
    private readonly jail: RootJail,
    private readonly actsForCallers: boolean,
    private readonly searched: SearchCache,
  ) {
    this.checking = actsForCallers && caller !== undefined && !isRoot(caller);
  }

  /**
   * Whether anything differs from the agent acting as itself: checks, or new objects to give
   * to their caller (a root caller whose group is not 0 gets its group too).
   */
  get active(): boolean {
    return this.checking || (this.actsForCallers && this.caller !== undefined && this.caller.gid !== 0);
  }

  private slavePath(host: string): string {
    return this.jail.toSlave(host);
  }

  private denied(host: string, what: string): SlaveError {
    return new SlaveError('EACCES', `${what}: permission denied: ${this.slavePath(host)}`);
  }

  /**
   * EACCES unless the caller may search every directory from the export root down to the one
   * holding `host` (the jail hands us canonical host paths: each component is a real directory).
   */
  search(host: string, what: string): void {
    if (!this.checking) return;
    const caller = this.caller as Caller;
    const root = this.jail.root;
    const inside = root === '/' ? '/' : `${root}/`;
    const dirs: string[] = [];
    if (host === root) return;
    for (let dir = posix.dirname(host); dir === root || dir.startsWith(inside); dir = posix.dirname(dir)) {
      dirs.push(dir);
      if (dir === root) break;
    }
    // From the root down, so the first refusal is the one the kernel would meet first.
    const now = Date.now();
    for (let i = dirs.length - 1; i >= 0; i--) {
      const dir = dirs[i] as string;
      const modes = this.searched.get(dir, now);
      if (!modes) return; // gone or not a directory: the operation itself reports ENOENT or ENOTDIR
      if (!permitsWithAcl(caller, modes, modes.acl, MAY_EXEC)) throw this.denied(dir, what);
    }
  }

  /** Search to `host`, then `want` (MAY_* bits) on the inode itself; its stats when checking. */
  need(host: string, want: number, what: string, follow = true): Stats | undefined {
    if (!this.checking) return undefined;
    this.search(host, what);
    const st = follow ? statSync(fsPath(host)) : lstatSync(fsPath(host));
    this.inode(st, host, want, what);
    return st;
  }

  /** `want` on inode `st` (at `host`), without the path's search. */
  inode(st: Stats, host: string, want: number, what: string): void {
    if (this.checking && !this.allows(st, host, want)) throw this.denied(host, what);
  }

  /** Whether the caller may `want` inode `st` at `host`, its ACL included. */
  allows(st: { mode: number; uid: number; gid: number }, host: string, want: number): boolean {
    return permitsWithAcl(this.caller as Caller, st, aclOf(this.searched.readAcl, host, st.mode), want);
  }

  /**
   * Adding or removing a name in `host`'s directory: search to it, write and search on it. The
   * directory's stats when checking, for sticky and set-group-ID rules.
   */
  parent(host: string, what: string): Stats | undefined {
    if (!this.checking) return undefined;
    return this.need(posix.dirname(host), MAY_WRITE | MAY_EXEC, what);
  }

  /** Removing or replacing the entry at `host` (unlink, rmdir, rename): also the sticky rule. */
  removable(host: string, what: string): void {
    const dir = this.parent(host, what);
    if (!dir) return;
    let entry: Stats;
    try {
      entry = lstatSync(fsPath(host));
    } catch {
      return; // nothing there: the operation reports ENOENT
    }
    if (!mayRemoveFrom(this.caller as Caller, dir, entry)) {
      throw new SlaveError('EPERM', `${what}: ${this.slavePath(host)} is another user's, in a sticky directory`);
    }
  }

  /**
   * Gives what was just created at `host` (with `mode`'s permission bits) to the caller: its uid,
   * and the caller's gid unless the directory is set-group-ID (the kernel already gave the new
   * inode that directory's group). chown clears set-user-ID and set-group-ID, so a mode that had
   * them is set again, less set-group-ID where the caller is outside the group, as the kernel's
   * inode_init_owner does.
   */
  own(host: string, mode: number, parentStats?: Stats): void {
    const caller = this.caller;
    // What the kernel gave a root agent creating as itself: nothing to change.
    if (!this.active || caller === undefined) return;
    const dir = parentStats ?? statSync(posix.dirname(host));
    const owner = newOwner(caller, dir);
    const st = lstatSync(fsPath(host));
    if (st.uid === owner.uid && st.gid === owner.gid) return;
    lchownSync(fsPath(host), owner.uid, owner.gid);
    if (st.isSymbolicLink() || st.isDirectory() || (mode & (S_ISUID | S_ISGID)) === 0) return;
    const kept = !isRoot(caller) && !inGroup(caller, owner.gid) ? mode & ~S_ISGID : mode;
    chmodSync(fsPath(host), kept & 0o7777);
  }
}
