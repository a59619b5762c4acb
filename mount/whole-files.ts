/**
 * Whole contents of small files, by slave path, as the mount last read them (an open's `whole`
 * reply) or wrote them (a file created or truncated through the mount and written from its start
 * to its end): a later read-only open of the file is answered from here with no trip to the
 * agent, which opens it only if a request then needs its handle (remote-fs.ts). git hashes every
 * file an untar just wrote through the mount; a build reads the same headers again and again.
 *
 * Kept while nothing changed the file: the mount drops an entry at its own writes, truncations
 * and name changes, and each entry carries the cache generation it was taken at, checked against
 * the slave's change feed (AttrCache.unchangedSince) when it is used.
 */

/** The kernel's page, the unit its page cache is kept up to date in (x86-64; where pages are larger, such files only miss the store: their pages come from the mount when read). */
const PAGE_SIZE = 4096;

export interface WholeFile {
  data: Buffer;
  /** The slave's inode number of the file: an open on the agent later must find the same (unknown yet: provisional). */
  ino: number;
  /** AttrCache.generation when the content was known to be the slave's. */
  generation: number;
}

export class WholeFiles {
  private readonly files = new Map<string, WholeFile>();
  private bytes = 0;

  /** `budget`: the most bytes kept; the least recently used go first. */
  constructor(private readonly budget: number) {}

  keep(path: string, file: WholeFile): void {
    this.drop(path);
    const { data } = file;
    if (data.length > this.budget) return;
    this.files.set(path, file);
    this.bytes += data.length;
    for (const [oldest, file] of this.files) {
      if (this.bytes <= this.budget) break;
      this.files.delete(oldest);
      this.bytes -= file.data.length;
    }
  }

  /** The content kept for `path`, made the most recently used. */
  get(path: string): WholeFile | undefined {
    const file = this.files.get(path);
    if (!file) return undefined;
    this.files.delete(path);
    this.files.set(path, file);
    return file;
  }

  /** Drops `path`'s content if it is still `file`. */
  dropIf(path: string, file: WholeFile): void {
    if (this.files.get(path) === file) this.drop(path);
  }

  drop(path: string): void {
    const file = this.files.get(path);
    if (!file) return;
    this.files.delete(path);
    this.bytes -= file.data.length;
  }

  /** Every name of the inode `ino` (a file written through a name that went, or through another link). */
  dropInode(ino: number): void {
    for (const [path, file] of [...this.files]) if (file.ino === ino) this.drop(path);
  }

  /** Everything under the directory `dir` (renamed: its files have other names now). */
  dropUnder(dir: string): void {
    const prefix = dir === '/' ? '/' : `${dir}/`;
    for (const path of [...this.files.keys()]) if (path.startsWith(prefix)) this.drop(path);
  }

  clear(): void {
    this.files.clear();
    this.bytes = 0;
  }
}

/**
 * Bytes the runs of written files (WrittenWhole) may hold at once, all files together: each run
 * takes from it as it grows and gives back when it ends, so a thousand files written at once
 * hold at most this much between them, not a MiB each.
 */
export class WrittenBudget {
  constructor(public left: number) {}
}

/**
 * What a file created or truncated through the mount was written with, while it is one run of
 * bytes from offset 0 of at most `max` bytes (and while `budget` has room): its whole content
 * once it is closed.
 */
export class WrittenWhole {
  private readonly parts: Buffer[] = [];
  private length = 0;
  private broken = false;
  /** Every write so far was of whole pages (so each began at a page's start: the run is contiguous from 0). */
  private pagesOnly = true;

  constructor(private readonly max: number, readonly generation: number, private readonly budget: WrittenBudget) {}

  /** A write of `data` at `offset`; anything but the next bytes, or too many, ends the run. */
  wrote(offset: number, data: Buffer): void {
    if (this.broken) return;
    if (offset !== this.length || this.length + data.length > this.max || data.length > this.budget.left) {
      this.spoil();
      return;
    }
    this.parts.push(Buffer.from(data)); // a copy: the caller's buffer is reused
    if (data.length % PAGE_SIZE !== 0) this.pagesOnly = false;
    this.length += data.length;
    this.budget.left -= data.length;
  }

  /**
   * Something else changed the file (another handle's write, a truncation), or its handle was
   * released: no whole content, and its bytes go back to the budget.
   */
  spoil(): void {
    if (this.broken) return;
    this.broken = true;
    this.parts.length = 0;
    this.budget.left += this.length;
  }

  /** Bytes written so far in the run. */
  get size(): number {
    return this.length;
  }

  /**
   * Whether the kernel holds every page of the content up to date already: it marks a page so
   * when one write request covered it whole (FUSE without the writeback cache), which every page
   * of a run of whole-page writes was. Handing such a file to the page cache again would only
   * copy what is there (write 4 KiB + close: a wakeup of the binding's notifier thread per file).
   */
  get inKernel(): boolean {
    return !this.broken && this.pagesOnly;
  }

  /** The content, if the run held. */
  content(): Buffer | undefined {
    return this.broken ? undefined : Buffer.concat(this.parts, this.length);
  }
}
