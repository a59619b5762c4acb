/**
 * The directories the agent watches for the masters, least recently used first. Keys are the
 * slave directories as requests named them (a Map lookup per request: the hot path makes no
 * syscall); several keys may share one kernel watch (one directory reached by two paths).
 */
import { posix } from 'node:path';

export interface Watch {
  readonly wd: number;
  /** The request directories on this watch. */
  readonly keys: Set<string>;
}

/** A request's directory as changes name it: normalised, no trailing slash. */
export function normalDir(key: string): string {
  const normal = posix.normalize(key);
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
}

/** The slave directories a watch stands for, as changes name them. */
export function dirsOf(watch: Watch): string[] {
  return [...new Set([...watch.keys].map(normalDir))];
}

export class WatchSet {
  /** Request's directory → its watch, oldest use first. */
  private readonly byKey = new Map<string, Watch>();
  private readonly byWd = new Map<number, Watch>();

  constructor(public max: number) {}

  get size(): number {
    return this.byWd.size;
  }

  /** Whether `key` is watched; marks it used. */
  touch(key: string): boolean {
    const found = this.byKey.get(key);
    if (found === undefined) return false;
    this.byKey.delete(key);
    this.byKey.set(key, found);
    return true;
  }

  byDescriptor(wd: number): Watch | undefined {
    return this.byWd.get(wd);
  }

  /** Records that `key` is watched by `wd`. */
  add(key: string, wd: number): void {
    let watch = this.byWd.get(wd);
    if (watch === undefined) this.byWd.set(wd, watch = { wd, keys: new Set() });
    watch.keys.add(key);
    this.byKey.set(key, watch);
  }

  /**
   * Drops the least recently used keys until at most `max` watches remain. Returns the
   * directories masters must forget, and the watches no key uses any more (to remove).
   */
  evict(): { dirs: string[]; unused: number[] } {
    const dirs: string[] = [];
    const unused: number[] = [];
    for (const [key, watch] of this.byKey) {
      if (this.byWd.size <= this.max) break;
      this.byKey.delete(key);
      watch.keys.delete(key);
      dirs.push(normalDir(key));
      if (watch.keys.size === 0) {
        this.byWd.delete(watch.wd);
        unused.push(watch.wd);
      }
    }
    return { dirs, unused };
  }

  /** The kernel dropped `wd` (or its path went stale): every key on it goes. */
  drop(wd: number): Watch | undefined {
    const watch = this.byWd.get(wd);
    if (watch === undefined) return undefined;
    this.byWd.delete(wd);
    for (const key of watch.keys) this.byKey.delete(key);
    return watch;
  }

  clear(): void {
    this.byKey.clear();
    this.byWd.clear();
  }
}
