/**
 * Which paths a cache keyed by path holds below a directory, found without scanning every key:
 * each path is filed under its parent, and each parent under its own, up to the root. Dropping a
 * directory's subtree (an rmdir, a rename, a change the slave made) then costs what the subtree
 * holds. A scan of every key cost what the whole cache holds, for every directory `rm -rf`
 * removed: quadratic in the tree (24,081 entries: a fifth of the mount's time).
 *
 * It may name paths the cache has since let go (a key deleted on its own is not unfiled): it
 * is a superset, which is all a subtree's removal needs. Its owner rebuilds it from its keys
 * when it has grown well past them (`size`).
 */
import { posix } from 'node:path';

export class PathTree {
  private readonly children = new Map<string, Set<string>>();
  /** Paths filed, counted once each. */
  private filed = 0;

  get size(): number {
    return this.filed;
  }

  /** Files `path` (absolute, normal form) and whichever of its ancestors are not filed yet. */
  add(path: string): void {
    for (let child = path; child !== '/';) {
      const parent = posix.dirname(child);
      let siblings = this.children.get(parent);
      const parentFiled = siblings !== undefined;
      if (!siblings) this.children.set(parent, siblings = new Set());
      if (siblings.has(child)) return;
      siblings.add(child);
      this.filed++;
      // A directory with a set of its own is filed (or is the root), and so are its ancestors.
      if (parentFiled) return;
      child = parent;
    }
  }

  /**
   * Unfiles everything below `path` (which stays filed) and gives each of those paths, a
   * directory before what it holds.
   */
  *takeBelow(path: string): Generator<string> {
    const stack = [path];
    for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
      const below = this.children.get(dir);
      if (!below) continue;
      this.children.delete(dir);
      this.filed -= below.size;
      for (const child of below) {
        yield child;
        stack.push(child);
      }
    }
  }

  clear(): void {
    this.children.clear();
    this.filed = 0;
  }
}
