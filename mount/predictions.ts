/**
 * Which changes the mount answers at once (docs/architecture.md, "Changes answered at once"):
 * the rules, from what the mount knows (the change feed live, the directory's cached listing and
 * modes, what was refused lately), and the attributes a new inode is given meanwhile. What is
 * answered, sent, and reported late is unrefused-changes.ts's; who may do what, caller-gate.ts's.
 */
import { posix } from 'node:path';
import { MAY_READ, MAY_WRITE, NAME_MAX, S_IFDIR, S_IFMT, S_IFREG, S_ISGID, nameToBytes, newOwner, permits, type Attr, type Caller } from '../protocol/index.js';
import type { AttrCache } from './attr-cache.js';
import type { CallerGate } from './caller-gate.js';
import type { FuseCaller } from './callers.js';
import { PROVISIONAL_INO } from './node-table.js';
import type { OpenFile } from './open-files.js';
import type { UnrefusedChanges } from './unrefused-changes.js';

const POSIX_ACL_ACCESS = 'system.posix_acl_access';


export class Predictions {
  constructor(
    private readonly unrefused: UnrefusedChanges,
    private readonly cache: AttrCache,
    private readonly gate: CallerGate,
    /** Whether the slave's change feed is live (the cache then holds what the slave has). */
    private readonly coherent: () => boolean,
    /**
     * The bytes of a slave path the agent can name: unbounded where it names long paths itself;
     * for an older agent, which names files by whole host paths, PATH_MAX less its export root's
     * bytes, past which its answer is ENAMETOOLONG (docs/architecture.md, "Long paths").
     */
    private readonly pathRoom: number,
  ) {}

  /**
   * Whether the agent can name `path` at all. A change of one it cannot waits for the agent's
   * answer (its ENAMETOOLONG): answered at once, it would be a success the slave never saw.
   */
  private nameable(path: string): boolean {
    // A UTF-16 unit is at most 3 bytes of UTF-8: most paths pass without being measured.
    return path.length * 3 < this.pathRoom || nameToBytes(path).length < this.pathRoom;
  }

  /**
   * Whether the agent will make `path` for `caller` as asked: the feed is live, the directory's
   * listing is cached and has no such name, nothing was refused in it lately, neither the name
   * nor the path is too long, and the caller may write there by the cached modes.
   */
  newName(path: string, caller: FuseCaller): boolean {
    if (!this.unrefused.enabled || !this.coherent() || !this.nameable(path)) return false;
    const dir = posix.dirname(path);
    const name = posix.basename(path);
    return this.unrefused.trusts(dir) && this.cache.listed(dir, name) === false && nameToBytes(name).length <= NAME_MAX
      && this.gate.predictsCreation(path, caller);
  }

  /**
   * Whether the agent will rename the file `from` to `to` as asked: both names in one directory
   * (one filesystem, so never EXDEV, which mv takes as "copy instead"), the feed live and the
   * directory trusted, `from` known and not a directory, `to` free by the directory's cached
   * listing or a known file of another inode (two names of one inode: rename does nothing), the
   * name not too long, and the caller may remove `from` and make or replace `to` by the cached
   * modes. A directory's rename waits: what the cache holds below it moves with it.
   */
  rename(from: string, to: string, caller: FuseCaller): boolean {
    if (!this.unrefused.enabled || !this.coherent() || from === to || !this.nameable(from) || !this.nameable(to)) return false;
    const dir = posix.dirname(from);
    const name = posix.basename(to);
    if (posix.dirname(to) !== dir || !this.unrefused.trusts(dir) || nameToBytes(name).length > NAME_MAX) return false;
    const moved = this.cache.lastKnown(from);
    if (!moved || (moved.mode & S_IFMT) === S_IFDIR) return false;
    const taken = this.cache.listed(dir, name);
    if (taken === undefined) return false;
    if (taken) {
      const replaced = this.cache.lastKnown(to);
      if (!replaced || (replaced.mode & S_IFMT) === S_IFDIR || replaced.ino === moved.ino) return false;
      return this.gate.predictsRemoval(from, caller) && this.gate.predictsRemoval(to, caller);
    }
    return this.gate.predictsRemoval(from, caller) && this.gate.predictsCreation(to, caller);
  }

  /** Whether a change of `path`'s attributes may go unanswered: the feed is live and its directory trusted. */
  change(path: string): boolean {
    return this.unrefused.enabled && this.coherent() && this.nameable(path) && this.unrefused.trusts(posix.dirname(path));
  }

  /**
   * An open file whose handle may carry `caller`'s attribute change unanswered: root's, or one
   * `allowed` says the agent would make exactly as asked (the handle's request goes without a
   * caller, as root's). The file is open, so the path was searched.
   */
  target(path: string, caller: FuseCaller, allowed: (who: Caller, attr: Attr) => boolean): OpenFile | undefined {
    const file = this.unrefused.target(path);
    return file && this.gate.allows(caller, file.attr, allowed) ? file : undefined;
  }

  /**
   * The cached attributes of `path` when a change of them may go unanswered by path: the feed is
   * live, no file is open on it for writing (that change goes by its handle, after its data),
   * and `allowed` says the agent makes it for this caller as asked (root: always, unless
   * `rootToo` is false and `allowed` says no). Size and times moved by our own writes or names
   * do not matter (AttrCache.lastKnown): the guess made from them is provisional.
   */
  changeable(path: string, caller: FuseCaller, allowed: (who: Caller, attr: Attr) => boolean, rootToo = true): Attr | undefined {
    if (!this.change(path) || this.unrefused.target(path)) return undefined;
    const attr = this.cache.lastKnown(path);
    if (!attr || !this.gate.cacheAnswers(path, caller)) return undefined;
    if (caller.uid === 0 && rootToo) return attr;
    return allowed(this.gate.wire(caller), attr) ? attr : undefined;
  }

  /**
   * The cached attributes of the regular file `path` when the agent would open it for reading
   * for `caller`: the feed is live, its directory trusted, and the caller may search its way
   * there and read it by the modes last seen (root always may).
   */
  readable(path: string, caller: FuseCaller): Attr | undefined {
    return this.openable(path, caller, MAY_READ);
  }

  /** As `readable`, for opening the file for writing. */
  writable(path: string, caller: FuseCaller): Attr | undefined {
    return this.openable(path, caller, MAY_WRITE);
  }

  private openable(path: string, caller: FuseCaller, want: number): Attr | undefined {
    if (!this.change(path)) return undefined;
    const attr = this.cache.lastKnown(path);
    if (!attr || (attr.mode & S_IFMT) !== S_IFREG || !this.gate.cacheAnswers(path, caller)) return undefined;
    if (caller.uid === 0) return attr;
    // The modes say it all only for a file known to have no access ACL, whose named entries
    // the mode bits do not show.
    if (!this.cache.isXattrAbsent(path, POSIX_ACL_ACCESS)) return undefined;
    return permits(this.gate.wire(caller), attr, want) ? attr : undefined;
  }

  /**
   * The attributes a new inode will have, as far as the mount can tell: the inode number, sizes
   * and times are the slave's to say, so the kernel gets these with timeout 0 (provisional).
   */
  newInode(path: string, mode: number, caller: FuseCaller, size = 0): Attr {
    const dir = this.cache.searchModes(posix.dirname(path));
    const owner = dir ? newOwner(this.gate.wire(caller), dir) : { uid: caller.uid, gid: caller.gid };
    const now = Date.now();
    const nsec = (now % 1000) * 1e6;
    return {
      mode: mode | ((mode & S_IFMT) === S_IFDIR && dir && (dir.mode & S_ISGID) ? S_ISGID : 0),
      nlink: (mode & S_IFMT) === S_IFDIR ? 2 : 1, uid: owner.uid, gid: owner.gid, size, blocks: 0,
      atimeMs: now, mtimeMs: now, ctimeMs: now, atimeNsec: nsec, mtimeNsec: nsec, ctimeNsec: nsec,
      ino: PROVISIONAL_INO, rdev: 0, blksize: 4096,
    };
  }
}
