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
 * after it in its parent): a tree of a few hundred directories comes in a few round trips, and
 * the agent's other requests wait a few ms at most behind one.
 */
const LISTED_BELOW = 512;
/**
 * A name looked up in a directory of at most this size (by its cached attributes: ext4 grows a
 * directory a 4 KiB block per ~100 names) whose listing is not cached brings the listing.
 */
const LISTED_FOR_LOOKUP_MAX = 64 * 1024;
/** A bound on the directories remembered as not listable by a caller. */
const MAX_UNLISTABLE = 10_000;

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
        if (!ahead) this.cache.listingRead(path);
        return entries;
      }
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
        for (const [dir, listed, bare] of page.below ?? []) {
          const below = fromWire(listed);
          if (this.keepEntries(dir, below, bare, generation, local)) this.cache.setListing(dir, below.map((e) => e.name), true);
        }
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
      if (this.cache.unchangedSince(path, generation)) this.cache.setListing(path, entries.map((e) => e.name), ahead);
      // A file being written: its name and number, not attributes that may predate its data
      // (the kernel looks it up, which sends the data first).
      const written = this.writing();
      return entries.map((e) => (e.attr && written.has(childOf(path, e.name), e.attr.ino) ? { name: e.name, attr: null, ino: e.attr.ino } : e));
    }
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
