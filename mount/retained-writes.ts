/**
 * Data written through the mount that the agent has not yet reported durable (NFSv3's unstable
 * writes, kept for COMMIT): by slave path, in the order the agent applied it, with the agent
 * boot that answered and the write's sequence number there. The agent reports the highest
 * durable sequence (agent/fs/commits.ts); what is at or below it is let go. An agent that comes
 * back with another boot id may have lost the rest: it is written again (remote-fs.ts).
 * Unlinks, renames, truncations and ranges punched, zeroed or copied over keep it in step with
 * the slave's names, sizes and bytes.
 *
 * Writing again makes the file's times those of the rewrite, so the times a program was told
 * after its writes (tar's futimens, `os.utime`) are kept too, to be set again after the rewrite;
 * and a file whose creation was lost with the data is made again with the mode and owner the
 * program knew, not the agent's defaults.
 */
import type { Timestamp } from '../protocol/index.js';

/** A file's times as a program was last told them, after its last write. */
export interface AcknowledgedTimes {
  atime: Timestamp;
  mtime: Timestamp;
}

/** A file's mode (permission bits) and owner as a program last knew them. */
export interface AcknowledgedOwner {
  mode: number;
  uid: number;
  gid: number;
}

/** What a restarted agent must be given again for one file. */
export interface StaleFile {
  entries: Retained[];
  /** Undefined: its last write came after any time change (its mtime is that write's). */
  times: AcknowledgedTimes | undefined;
  owner: AcknowledgedOwner | undefined;
}

export interface Retained {
  offset: number;
  data: Buffer;
  boot: string;
  seq: number;
}

export class RetainedWrites {
  private readonly byPath = new Map<string, Retained[]>();
  /** What a program was told of each path with writes kept (cleared with them). */
  private readonly told = new Map<string, { times?: AcknowledgedTimes; owner?: AcknowledgedOwner }>();
  private held = 0;
  private durableBoot = '';
  private durableSeq = -1;

  constructor(
    readonly limitBytes: number,
    /** Called with the data of every entry let go (its buffer may go back to a pool). */
    private readonly release: (data: Buffer) => void = () => undefined,
  ) {}

  /** Bytes held. */
  get bytes(): number {
    return this.held;
  }

  get full(): boolean {
    return this.held >= this.limitBytes;
  }

  /** `owner`: the file's mode and owner as the mount knows them when the write is applied. */
  keep(path: string, entry: Retained, owner?: AcknowledgedOwner): void {
    let list = this.byPath.get(path);
    if (!list) this.byPath.set(path, (list = []));
    list.push(entry);
    this.held += entry.data.length;
    // The write set mtime; a later change of times comes after it.
    const told = this.told.get(path);
    this.told.set(path, { owner: owner ?? told?.owner });
  }

  /** A program was told `path`'s attributes are these; kept while the path has writes kept. */
  acknowledged(path: string, times: AcknowledgedTimes, owner?: AcknowledgedOwner): void {
    if (!this.byPath.has(path)) return;
    this.told.set(path, { times, owner: owner ?? this.told.get(path)?.owner });
  }

  /** The highest sequence kept for `path` (0: none). */
  lastSeq(path: string): number {
    return Math.max(0, ...(this.byPath.get(path) ?? []).map((e) => e.seq));
  }

  /** The agent of `boot` has everything up to `seq` on disk (of `path`, when given). */
  durable(boot: string, seq: number, path?: string): void {
    // Every write reply says what is durable, and it moves only at the agent's commits: the
    // same answer again lets nothing go, and is not worth a pass over every path kept.
    if (path === undefined) {
      if (boot === this.durableBoot && seq <= this.durableSeq) return;
      this.durableBoot = boot;
      this.durableSeq = seq;
    }
    for (const [p, list] of path === undefined ? this.byPath : [[path, this.byPath.get(path) ?? []] as const]) {
      const left = list.filter((e) => e.boot !== boot || e.seq > seq);
      this.replace(p, list, left);
    }
  }

  /** Everything kept under another boot than `boot`, by path, oldest first; it leaves the store. */
  takeStale(boot: string): Map<string, StaleFile> {
    const stale = new Map<string, StaleFile>();
    for (const [path, list] of [...this.byPath]) {
      const old = list.filter((e) => e.boot !== boot);
      if (old.length === 0) continue;
      const told = this.told.get(path);
      stale.set(path, { entries: old, times: told?.times, owner: told?.owner });
      this.replace(path, list, list.filter((e) => e.boot === boot), false); // the caller's now
    }
    return stale;
  }

  unlinked(path: string): void {
    this.replace(path, this.byPath.get(path) ?? [], []);
  }

  /**
   * The name `from` went while its file keeps the name `to` (a hard link): what is kept by
   * `from` joins what `to` has, so that a rewrite after a restart finds the file by a name it
   * still has.
   */
  movedTo(from: string, to: string): void {
    const list = this.byPath.get(from);
    if (!list) return;
    const told = this.told.get(from);
    this.byPath.delete(from);
    this.told.delete(from);
    // A rewrite sends a file's entries in the order the agent applied them (their seq).
    this.byPath.set(to, [...(this.byPath.get(to) ?? []), ...list]);
    if (told && !this.told.has(to)) this.told.set(to, told);
  }

  /** `from` took the name `to`; a directory (`tree`) takes what is retained below it along. */
  renamed(from: string, to: string, tree = true): void {
    this.unlinked(to);
    const prefix = `${from}/`;
    // A file's rename (rsync's and git's, one per file) moves its own entry, not a scan of all.
    const moved = tree ? [...this.byPath] : [[from, this.byPath.get(from)] as const];
    for (const [path, list] of moved) {
      if (list === undefined || (path !== from && !path.startsWith(prefix))) continue;
      const told = this.told.get(path);
      this.byPath.delete(path);
      this.told.delete(path);
      this.byPath.set(to + path.slice(from.length), list);
      if (told) this.told.set(to + path.slice(from.length), told);
    }
  }

  /** renameat2's RENAME_EXCHANGE: what is kept for either name (or below it) is the other's. */
  exchanged(a: string, b: string): void {
    const aside = `${a}\0exchanging`; // no path has a NUL
    this.renamed(a, aside);
    this.renamed(b, a);
    this.renamed(aside, b);
  }

  /** The file was cut to `size`: nothing beyond it is to be written again. */
  truncated(path: string, size: number): void {
    const list = this.byPath.get(path);
    if (!list) return;
    const left: Retained[] = [];
    for (const e of list) {
      if (e.offset >= size) continue;
      left.push(e.offset + e.data.length <= size ? e : { ...e, data: e.data.subarray(0, size - e.offset) });
    }
    this.replace(path, list, left);
  }

  /** The range holds other bytes now (punched, zeroed, copied over): its old ones are not to be written again. */
  replaced(path: string, offset: number, length: number): void {
    const list = this.byPath.get(path);
    if (!list) return;
    const end = offset + length;
    const left: Retained[] = [];
    for (const e of list) {
      const eEnd = e.offset + e.data.length;
      if (eEnd <= offset || e.offset >= end) {
        left.push(e);
        continue;
      }
      if (e.offset < offset) left.push({ ...e, data: e.data.subarray(0, offset - e.offset) });
      if (eEnd > end) left.push({ ...e, offset: end, data: e.data.subarray(end - e.offset) });
    }
    this.replace(path, list, left);
  }

  private replace(path: string, before: Retained[], after: Retained[], release = true): void {
    if (after.length === before.length && after.every((e, i) => e === before[i])) return;
    if (release) {
      const kept = new Set(after.map((e) => e.data.buffer));
      for (const e of before) if (!kept.has(e.data.buffer)) this.release(e.data);
    }
    this.held -= before.reduce((n, e) => n + e.data.length, 0);
    this.held += after.reduce((n, e) => n + e.data.length, 0);
    if (after.length === 0) {
      this.byPath.delete(path);
      this.told.delete(path);
    } else {
      this.byPath.set(path, after);
    }
  }
}
