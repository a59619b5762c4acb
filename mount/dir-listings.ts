/**
 * Directory listings for the kernel's readdir: from the mount's cache where it holds a whole
 * one, else from the agent. A listing asked of the agent brings those below it (fs.readdir's
 * `below` and `then`): a program that lists a directory mostly lists its subdirectories next
 * (find, du, rm -rf, git status, tar c), and finds them cached (docs/architecture.md, "Fewer
 * round trips").
 */
import { posix } from 'node:path';
import {
  MAX_LISTED_THEN, MAY_READ, S_IFDIR, S_IFMT, SlaveError, attrFromWire, type Attr, type OpReply, type OpRequest, type ReaddirEntry,
} from '../protocol/index.js';
import type { AgentClient } from '../transport/agent-client.js';
import type { AttrCache } from './attr-cache.js';
import type { CallerGate } from './caller-gate.js';
import type { FuseCaller } from './callers.js';
import type { DirEntry } from './mount-fs.js';
import { PROVISIONAL_INO } from './node-table.js';
import type { UnrefusedChanges } from './unrefused-changes.js';

/**
 * The most entries the agent lists below a directory with it (depth first, then the directories
 * after it in its parent): a tree of a few hundred directories comes in a few round trips; the
 * agent serves other requests between its directories (agent/fs/dir-ops.ts).
 */
const LISTED_BELOW = 512;
/**
 * A name looked up in a directory of at most this size (by its cached attributes: ext4 grows a
 * directory a 4 KiB block per ~100 names) whose listing is not cached brings the listing.
 */
const LISTED_FOR_LOOKUP_MAX = 64 * 1024;
/** A bound on the directories remembered as not listable by a caller. */
const MAX_UNLISTABLE = 10_000;
/** A bound on the directories remembered as brought by a listing and not yet read by the program. */
const MAX_WALK_DIRS = 20_000;
/** The most names nextUnlisted looks at for a walk's next directory whose listing is not cached. */
const NEXT_SEARCH_MAX = 4096;

/**
 * The directories one listing brought below it (fs.readdir's `below`), as the program reads
 * them: once it has read two (it is walking, not listing one directory), the listings that
 * come after the last of them are asked for, while it reads these.
 */
interface WalkBatch {
  /** The last directory the agent listed, in its walk's order (depth first, listing order). */
  last: string;
  size: number;
  read: number;
  /** The next listings were asked for (or there are none). */
  followed: boolean;
}

function fromWire(listed: ReaddirEntry[]): DirEntry[] {
  return listed.map(([name, wire]) => ({ name, attr: wire ? attrFromWire(wire) : null }));
}

function childOf(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** Files being written, by name or by inode number (see DirListings' `writing`). */
export interface BeingWritten {
  has(path: string, ino: number): boolean;
}

export class DirListings {
  /** Listings asked for by lookups (listFor), by directory: lookups at once share one. */
  private readonly forLookups = new Map<string, Promise<boolean>>();
  /** Directories a caller may search but not list (by uid and path): their names are looked up alone. */
  private readonly unlistable = new Set<string>();
  /** Directories a listing brought below it, until the program reads them: see WalkBatch. */
  private readonly walkBatches = new Map<string, WalkBatch>();
  /** The listing asked for ahead of a walk, and the directory whose subtree it covers. */
  private walkAhead: { scope: string; done: Promise<void> } | undefined;

  constructor(
    private readonly cache: AttrCache,
    private readonly gate: CallerGate,
    private readonly unrefused: UnrefusedChanges,
    private readonly client: AgentClient,
    /** fs.readdir by path as `caller`. */
    private readonly ask: (args: OpRequest<'fs.readdir'>, caller: FuseCaller) => Promise<OpReply<'fs.readdir'>>,
    /** Whether the slave's change feed is live (only then are listings kept long). */
    private readonly coherent: () => boolean,
    /**
     * Sends the data buffered for files in the directory before it is listed: the agent applies
     * requests in order, so the listing then holds their sizes and times.
     */
    private readonly sendWritersIn: (dir: string) => Promise<void> = async () => undefined,
    /**
     * The files whose writes the agent may not have applied yet (open with data buffered or
     * unanswered, under any of their names), as of now: a listing's attributes of them may
     * predate those writes, and are neither kept nor given to the kernel.
     */
    private readonly writing: () => BeingWritten = () => ({ has: () => false }),
  ) {}

  /** `ahead`: for a lookup, not the program's readdir (AttrCache's Listing.ahead). */
  async list(path: string, caller: FuseCaller, ahead = false): Promise<DirEntry[]> {
    const cached = this.gate.cacheAnswers(path, caller, MAY_READ) ? this.cache.listing(path) : undefined;
    if (cached) {
      // Only whole: the kernel takes a listing's attributes (readdirplus); one without them costs it a lookup each.
      let entries = cached.map((name) => ({ name, attr: this.cache.lookup(posix.join(path, name)) ?? null }));
      if (entries.some((e) => e.attr && this.guessed(e.attr))) {
        // Names made without waiting: their attributes are the slave's to say.
        await this.unrefused.settled();
        entries = cached.map((name) => ({ name, attr: this.cache.lookup(posix.join(path, name)) ?? null }));
      }
      if (entries.every((e) => e.attr !== null && !this.guessed(e.attr))) {
        if (!ahead) {
          this.cache.listingRead(path);
          this.walked(path, caller);
        }
        return entries;
      }
    }
    // A walk's next listings already asked for: wait for them rather than ask twice.
    const walkAhead = this.walkAhead;
    if (!ahead && walkAhead && (walkAhead.scope === '/' || path.startsWith(`${walkAhead.scope}/`))) {
      await walkAhead.done;
      return this.list(path, caller);
    }
    // Its files' data first: the entries' sizes and times are then what the program wrote.
    await this.sendWritersIn(path);
    // A listing's later pages come by a cursor of the agent's: one that restarted meanwhile
    // answers ESTALE for it, and the listing starts again (once).
    for (let attempt = 0; ; attempt++) {
      const entries: DirEntry[] = [];
      const [generation, local] = [this.cache.generation, this.cache.local];
      try {
        // The listings below are only worth their bytes where the cache keeps them.
        const more = this.cache.enabled && this.coherent();
        let page = await this.ask(more ? { path, below: LISTED_BELOW, then: this.unlistedAfter(path) } : { path }, caller);
        const brought = page.below ?? [];
        for (const [dir, listed, bare] of brought) {
          const below = fromWire(listed);
          if (this.keepEntries(dir, below, bare, generation, local) && this.current(dir, generation, local)) {
            this.cache.setListing(dir, below.map((e) => e.name), true);
          }
        }
        this.broughtForWalk(brought.map(([dir]) => dir));
        const boot = this.client.bootId;
        for (;;) {
          const listed = fromWire(page.entries);
          entries.push(...listed);
          this.keepEntries(path, listed, page.bare ?? [], generation, local);
          if (page.cursor === null) break;
          page = await this.client.call('fs.readdir', { cursor: page.cursor }, { handleBoot: boot });
        }
      } catch (err) {
        if (attempt === 0 && err instanceof SlaveError && err.errnoName === 'ESTALE') continue;
        throw err;
      }
      if (this.current(path, generation, local)) this.cache.setListing(path, entries.map((e) => e.name), ahead);
      // A file being written: its name and number, not attributes that may predate its data
      // (the kernel looks it up, which sends the data first).
      const written = this.writing();
      return entries.map((e) => (e.attr && written.has(childOf(path, e.name), e.attr.ino) ? { name: e.name, attr: null, ino: e.attr.ino } : e));
    }
  }

  /** Remembers the directories one listing brought below it, for `walked`. */
  private broughtForWalk(dirs: string[]): void {
    const last = dirs.at(-1);
    if (last === undefined) return;
    if (this.walkBatches.size + dirs.length > MAX_WALK_DIRS) this.walkBatches.clear();
    const batch: WalkBatch = { last, size: dirs.length, read: 0, followed: false };
    for (const dir of dirs) this.walkBatches.set(dir, batch);
  }

  /**
   * The program read `path`'s cached listing. Brought by a listing with others, and the second
   * of them it read: it walks the tree (find, du, rm -rf, git status), so the listings after the
   * last of them are asked for now, in the background, and come while it reads these; read-ahead
   * for a walk, one listing ahead of it. Not for a program that reads only one of them (`ls` of
   * a subdirectory): that would cost the agent a listing of up to LISTED_BELOW entries nobody reads.
   */
  private walked(path: string, caller: FuseCaller): void {
    const batch = this.walkBatches.get(path);
    if (!batch) return;
    this.walkBatches.delete(path);
    batch.read++;
    if (batch.followed || batch.read < Math.min(2, batch.size)) return;
    if (this.walkAhead) return; // one listing ahead at a time: the next read of this batch tries again
    batch.followed = true;
    const next = this.nextUnlisted(batch.last);
    if (next === undefined) return;
    // A failure is the program's to meet when it lists the directory itself.
    const done: Promise<void> = this.list(next, caller, true).then(() => undefined, () => undefined).finally(() => {
      if (this.walkAhead?.done === done) this.walkAhead = undefined;
    });
    this.walkAhead = { scope: posix.dirname(next), done };
  }

  /**
   * The first directory after `from` in a depth-first walk in listing order (the order of the
   * agent's, and of find's and rm's) whose listing is not cached: below `from`, then after it
   * in its parent, and so on up. Looks at NEXT_SEARCH_MAX names at most.
   */
  private nextUnlisted(from: string): string | undefined {
    let budget = NEXT_SEARCH_MAX;
    const firstIn = (dir: string, names: string[] | undefined, start: number): string | undefined => {
      for (let i = start; names !== undefined && i < names.length && budget > 0; i++, budget--) {
        const child = childOf(dir, names[i] as string);
        if (this.cache.kindOf(child) !== S_IFDIR) continue;
        const listed = this.cache.listing(child);
        if (listed === undefined) return child;
        const found = firstIn(child, listed, 0);
        if (found !== undefined) return found;
      }
      return undefined;
    };
    let found = firstIn(from, this.cache.listing(from), 0);
    for (let at = from; found === undefined && budget > 0 && at !== '/'; at = posix.dirname(at)) {
      const parent = posix.dirname(at);
      const names = this.cache.listing(parent);
      if (names === undefined) return undefined;
      found = firstIn(parent, names, names.indexOf(posix.basename(at)) + 1);
    }
    return found;
  }

  /** A guess of the mount's: no inode number yet (the kernel's readdir would drop the name), or times to come. */
  private guessed(attr: Attr): boolean {
    return attr.ino === PROVISIONAL_INO || this.unrefused.provisional(attr);
  }

  /**
   * A name looked up in a directory whose listing is not cached: the whole listing is asked for
   * instead, as a program that looks up one name there mostly looks up others next (git status,
   * make, Python's imports, which also look for names that are not there: the listing answers
   * those too). Only while listings are kept (the feed is live), for a directory of at most
   * LISTED_FOR_LOOKUP_MAX bytes. Whether the listing is cached now (a caller who may not list
   * the directory: no, and the name is looked up alone).
   */
  async listFor(path: string, caller: FuseCaller): Promise<boolean> {
    if (path === '/' || !this.cache.enabled || !this.coherent()) return false;
    const dir = posix.dirname(path);
    if (this.cache.listed(dir, posix.basename(path)) !== undefined) return true;
    const attr = this.cache.lastKnown(dir);
    if (!attr || (attr.mode & S_IFMT) !== S_IFDIR || attr.size > LISTED_FOR_LOOKUP_MAX) return false;
    const refusedKey = `${caller.uid}:${dir}`;
    if (this.unlistable.has(refusedKey)) return false;
    let listing = this.forLookups.get(dir);
    if (!listing) {
      listing = this.list(dir, caller, true).then(() => this.cache.listed(dir, posix.basename(path)) !== undefined, () => {
        if (this.unlistable.size >= MAX_UNLISTABLE) this.unlistable.clear();
        this.unlistable.add(refusedKey);
        return false;
      }).finally(() => { this.forLookups.delete(dir); });
      this.forLookups.set(dir, listing);
    }
    return listing;
  }

  /**
   * The directories after `path` in its parent's cached listing whose own listings are not
   * cached: a program walking the tree lists them next (fs.readdir's `then`).
   */
  private unlistedAfter(path: string): string[] {
    const parent = posix.dirname(path);
    const names = path === '/' ? undefined : this.cache.listing(parent);
    if (!names) return [];
    const after: string[] = [];
    for (let i = names.indexOf(posix.basename(path)) + 1; i > 0 && i < names.length && after.length < MAX_LISTED_THEN; i++) {
      const sibling = childOf(parent, names[i] as string);
      if (this.cache.kindOf(sibling) === S_IFDIR && this.cache.listing(sibling) === undefined) after.push(sibling);
    }
    return after;
  }

  /**
   * Whether a listing of `dir` asked for at `generation` and `local` may be kept: nothing changed
   * there since, on the slave or through us. Else it may predate the change (a name made here
   * missing from it would pass for free), and is given, not kept.
   */
  private current(dir: string, generation: number, local: number): boolean {
    return this.cache.unchangedSince(dir, generation) && this.cache.unchangedHereSince(dir, local);
  }

  /**
   * Caches the attributes of `dir`'s `listed` entries (`bare`: the indexes of those with no
   * extended attribute), as of `generation` and `local`; whether every entry had attributes
   * (names only: the caller may not search the directory). An entry changed through the mount
   * since the listing was asked for, or still being written, is not kept: the listing predates
   * that change, and would undo it in the cache (a file's size back to before its writes).
   */
  private keepEntries(dir: string, listed: DirEntry[], bare: number[], generation: number, local: number): boolean {
    if (!this.cache.unchangedSince(dir, generation)) return false;
    const none = new Set(bare);
    const written = this.writing();
    let whole = true;
    for (const [i, { name, attr }] of listed.entries()) {
      if (!attr) {
        whole = false;
        continue;
      }
      const child = childOf(dir, name);
      if (!this.cache.unchangedHereSince(child, local) || written.has(child, attr.ino)) continue;
      this.cache.set(child, attr);
      if (none.has(i)) this.cache.setNoXattrs(child);
    }
    return whole;
  }
}
