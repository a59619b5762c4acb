/**
 * How one mount shows the slave's symlinks and stores the ones made through it (`-o symlinks`,
 * `-o seen_at`): the file mount and the device mount both answer readlink and symlink here, so
 * the rule is the same on both (protocol/symlink-target.ts says what each mode shows).
 *
 * A target with a `..` after a name (`current/..`, `tmp/../../x`) is shown as stored only when
 * following it as the master's kernel will, through the links on the way as this mount shows
 * them, never takes a `..` at the mount's root: there the master's kernel would leave the
 * mount, where the slave's stays at its root. Where it would, it is shown as where the slave's
 * kernel lands (`s/../x` with `s -> /` as `/x`, under the mount's path), with no `..` left;
 * with too many links on the way to tell, its `..` are resolved lexically.
 */
import type { Attr } from '../protocol/index.js';
import { S_IFLNK, S_IFMT, isDir, linkDirectory, shownSymlinkTarget, storedSymlinkTarget, targetWalk, translatedSymlinkTarget } from '../protocol/index.js';
import type { SymlinkMode } from './mount-options.js';

/** What readlink answers the kernel. */
export interface ShownLink {
  target: string;
  /**
   * Whether the kernel may keep it. A target whose showing depended on what the names before
   * its `..` are is asked again at each use: shown as stored because the walk stayed inside, a
   * name replaced by a link to the root would make that `..` leave the mount; resolved because
   * it did not, it would stay resolved once that link became a directory again.
   */
  keep: boolean;
}

/** What the walk asks of the slave, as the mount's caller may see it. */
export interface SlaveLinks {
  /** lstat of a path in the mount, or null where the caller finds nothing (or may not look). */
  attr(path: string): Promise<Attr | null>;
  /** The target the slave stores for the link at `path`. */
  target(path: string): Promise<string>;
}

/** Links followed on one walk, as Linux's own limit before ELOOP. */
const MAX_LINKS = 40;

/** Where a walk ends: a canonical position in the mount (components), where it fails, or 'loops'. */
type WalkEnd = { at: string[] } | { failsAt: string[]; rest: string[] } | 'loops';

function components(path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.');
}

export class SymlinkView {
  /**
   * `seenAt`: where the mount's callers see the slave's root (absolute, normalised), the
   * mountpoint unless `-o seen_at` says otherwise. `aliases`: other paths that name the mount's
   * root on this machine (the mountpoint through a symlink, as a shell's `$PWD` may spell it):
   * links made to paths under them are stored as the slave's own paths too.
   */
  constructor(readonly mode: SymlinkMode, readonly seenAt: string, private readonly aliases: string[] = []) {}

  /** What readlink of the link at `linkPath` (a path in the mount) shows for its slave-side `target`. */
  async shown(linkPath: string, target: string, slave: SlaveLinks): Promise<ShownLink> {
    if (this.mode === 'raw') return { target, keep: true };
    const dependsOnNames = targetWalk(linkPath, target).namesBeforeDotDot.length > 0;
    return { target: await this.show(linkPath, target, slave, { links: MAX_LINKS }), keep: !dependsOnNames };
  }

  /** What the slave stores for a link made through the mount with `target`. */
  stored(target: string): string {
    if (this.mode === 'raw') return target;
    for (const prefix of [this.seenAt, ...this.aliases]) {
      const stored = storedSymlinkTarget(prefix, target);
      if (stored !== target) return stored;
    }
    return target;
  }

  private async show(linkPath: string, target: string, slave: SlaveLinks, budget: { links: number }): Promise<string> {
    let asStored = false;
    if (targetWalk(linkPath, target).namesBeforeDotDot.length > 0) {
      // Only the part up to the last `..` can leave; what follows goes down from where it is.
      const parts = target.split('/');
      let end = parts.length - 1;
      while (parts[end] !== '..') end--;
      const from = target.startsWith('/') ? [] : linkDirectory(linkPath);
      const walked = { atRoot: false };
      const reached = await this.follow(from, parts.slice(0, end + 1).join('/'), slave, budget, walked);
      if (reached !== 'loops' && !walked.atRoot) {
        // Every `..` taken where the slave takes it, or the walk fails first on both sides.
        asStored = true;
      } else if (reached !== 'loops' && 'at' in reached) {
        // Where the slave's kernel lands, which stays at its root: shown without any `..`.
        const rest = parts.slice(end + 1).join('/');
        target = `/${[...reached.at, ...components(rest)].join('/')}${rest.endsWith('/') || rest.endsWith('/.') ? '/' : ''}`;
      } else if (reached !== 'loops') {
        // Down to the name where the slave's walk fails: the master's fails there too, before
        // any `..` after it.
        target = `/${[...reached.failsAt, ...reached.rest, ...parts.slice(end + 1)].join('/')}`;
        asStored = true;
      }
      // Else (too many links to tell): resolved lexically.
    }
    return this.mode === 'relative'
      ? shownSymlinkTarget(linkPath, target, asStored)
      : translatedSymlinkTarget(this.seenAt, linkPath, target, asStored);
  }

  /**
   * Follows `path` (absolute: from the slave's root) from the canonical directory `from`, as the
   * master's kernel will: each link on the way through the target this mount shows for it. A
   * `..` at the mount's root stays there, as on the slave, and sets `walked.atRoot`: the master's
   * kernel would have left the mount. `failsAt`: the walk fails (no such name, not a directory)
   * at the first of `rest`, in that directory, on both sides; 'loops': too many links to tell.
   */
  private async follow(from: string[], path: string, slave: SlaveLinks, budget: { links: number }, walked: { atRoot: boolean }): Promise<WalkEnd> {
    const at = path.startsWith('/') ? [] : [...from];
    const parts = components(path);
    for (const [i, part] of parts.entries()) {
      if (part === '..') {
        if (at.length === 0) walked.atRoot = true;
        at.pop();
        continue;
      }
      const fails = { failsAt: [...at], rest: parts.slice(i) };
      const name = `/${[...at, part].join('/')}`;
      const attr = await slave.attr(name);
      if (attr === null) return fails;
      if (isDir(attr)) {
        at.push(part);
        continue;
      }
      if ((attr.mode & S_IFMT) !== S_IFLNK) return fails;
      if (--budget.links < 0) return 'loops';
      const shown = await this.show(name, await slave.target(name), slave, budget);
      const end = await this.follow(at, this.inside(shown), slave, budget, walked);
      if (end === 'loops') return end;
      if (!('at' in end)) return fails;
      at.splice(0, at.length, ...end.at);
    }
    return { at };
  }

  /** A shown target in the slave's terms: an absolute one under `seenAt` back from the slave's root. */
  private inside(shown: string): string {
    if (this.seenAt === '/' || !shown.startsWith('/')) return shown;
    return shown === this.seenAt ? '/' : shown.slice(this.seenAt.length);
  }
}
