/**
 * What the mount may do for a caller without asking the agent, judged by the rules the agent
 * applies (protocol/caller.ts) to what the cache knows: answer from the cache, send a removal or
 * an attribute change unanswered. Root may have everything; anyone else only what the cached
 * modes allow, and the agent decides the rest on the slave's current inodes.
 */
import { posix } from 'node:path';
import { MAY_EXEC, MAY_WRITE, mayRemoveFrom, permits, type Attr, type Caller } from '../protocol/index.js';
import type { AttrCache } from './attr-cache.js';
import { CallerGroups, type FuseCaller } from './callers.js';

/** Directories remembered as searchable, per caller, at most (then forgotten all at once). */
const MAX_SEARCHABLE = 4096;

export class CallerGate {
  private readonly groups = new CallerGroups();
  /**
   * Per caller (CallerGroups hands out one object per process for a while), the directories the
   * cached modes let it search down to from the root, as of one searchModesVersion. Judged again
   * from the root for every request, a path 200 directories deep cost a non-root caller's round
   * of stat, create and unlink about 0.7 ms of the mount's CPU more than root's (issue 13's bound: 20 %).
   */
  private readonly searchable = new WeakMap<Caller, { version: number; dirs: Set<string> }>();

  constructor(private readonly cache: AttrCache) {}

  /** The caller as the wire carries it, groups included. */
  wire(caller: FuseCaller): Caller {
    return this.groups.wire(caller);
  }

  /**
   * Whether the cache may answer `caller` about `path` (its attributes, its absence, its
   * listing with `want` MAY_READ): root always; anyone else only if the cached attributes of
   * every directory above it let them search it (and the wanted access to `path` itself). What
   * the cache does not know, or would refuse, the agent decides, on the slave's current inodes.
   */
  cacheAnswers(path: string, caller: FuseCaller, want = 0): boolean {
    if (caller.uid === 0) return true;
    const who = this.wire(caller);
    if (want !== 0) {
      // Only directories are asked this of (opendir, readdir): by the last modes seen of them,
      // as for the directories above, not by attributes that every change in them expires.
      const self = this.cache.searchModes(path);
      if (!self || !permits(who, self, want)) return false;
    }
    return this.searches(who, posix.dirname(path));
  }

  /** Whether the cached modes of `dir` and every directory above it let `who` search them. */
  private searches(who: Caller, dir: string): boolean {
    const version = this.cache.searchModesVersion;
    let known = this.searchable.get(who);
    if (known?.version !== version) {
      known = { version, dirs: new Set() };
      this.searchable.set(who, known);
    }
    const judged: string[] = [];
    for (let at = dir; !known.dirs.has(at); at = posix.dirname(at)) {
      const modes = this.cache.searchModes(at);
      if (!modes || !permits(who, modes, MAY_EXEC)) return false;
      judged.push(at);
      if (at === '/') break;
    }
    if (known.dirs.size + judged.length > MAX_SEARCHABLE) known.dirs.clear();
    for (const at of judged) known.dirs.add(at);
    return true;
  }

  /**
   * Whether the agent will let `caller` remove `path`, judged as it would from what the cache
   * knows: search to it, write and search on its directory, the sticky rule.
   */
  predictsRemoval(path: string, caller: FuseCaller): boolean {
    if (caller.uid === 0) return true;
    const who = this.wire(caller);
    const dir = this.cache.searchModes(posix.dirname(path));
    // The owner is all the sticky bit's rule needs: one last seen stands after a name made or
    // removed inside (which only moves its size, times and link count).
    const entry = this.cache.lastKnown(path) ?? this.cache.lookup(path);
    if (!dir || !entry || !this.cacheAnswers(path, caller)) return false;
    return permits(who, dir, MAY_WRITE | MAY_EXEC) && mayRemoveFrom(who, dir, entry);
  }

  /**
   * Whether the agent will let `caller` make a name at `path`, judged as it would from what the
   * cache knows: search to the directory, write and search on it.
   */
  predictsCreation(path: string, caller: FuseCaller): boolean {
    if (caller.uid === 0) return true;
    const dir = this.cache.searchModes(posix.dirname(path));
    return dir !== undefined && this.cacheAnswers(path, caller) && permits(this.wire(caller), dir, MAY_WRITE | MAY_EXEC);
  }

  /** Root's change of an inode with `attr`, or one `allowed` says the agent makes as asked. */
  allows(caller: FuseCaller, attr: Attr, allowed: (who: Caller, attr: Attr) => boolean): boolean {
    return caller.uid === 0 || allowed(this.wire(caller), attr);
  }
}
