/**
 * The mount's metadata cache, by slave path: attributes, known-missing names, and complete
 * directory listings (filled by readdir, which carries every entry's attributes, and by mkdir,
 * which makes an empty one). A listing answers "no such file" for its directory without a round
 * trip, and the next readdir of the directory (rm -rf reads each directory twice). Entries live `attrTtlMs`/`entryTtlMs`, as sshfs's cache does, and every change the mount
 * itself makes is applied here at once.
 */
import { posix } from 'node:path';
import { S_IFDIR, S_IFMT, type Attr } from '../protocol/index.js';
import { PathTree } from './path-tree.js';

interface Entry {
  attr: Attr | null; // null: known not to exist
  expires: number;
  /**
   * A change through us moved what only the slave can say (size, times, link count: a write to
   * the file, a name made or removed in the directory): `lookup` no longer gives these, but
   * the kind, mode and owner stand (lastKnown), so a change of those is still predicted.
   */
  unsure?: boolean;
  /**
   * A file with more than one name: its mode and owner may change through another, so only its
   * kind is vouched for (kindOf), which is all an unlink needs.
   */
  shared?: boolean;
}

interface Listing {
  names: Set<string>;
  expires: number;
  /**
   * Asked for ahead of the program (with another listing, or for a lookup), not read by it: it
   * answers the names it holds, but "no such file" only once the program read it. A name made
   * on the slave an instant ago, which the feed has yet to report, is then asked for, as it was
   * before listings came ahead.
   */
  ahead?: boolean;
}

/** What the cache keeps of a directory past its attributes' expiry. */
export interface DirModes {
  mode: number;
  uid: number;
  gid: number;
  ino: number;
}

/**
 * Directories' last-seen modes by path. `version` moves whenever one is added, altered (mode,
 * owner, group, inode) or dropped: what was judged from them (CallerGate's searches) stands until
 * then. Most updates bring the same modes again (a directory's times changed): they move nothing.
 */
class DirModesByPath extends Map<string, DirModes> {
  version = 0;

  override set(path: string, modes: DirModes): this {
    const old = super.get(path);
    if (old?.mode !== modes.mode || old.uid !== modes.uid || old.gid !== modes.gid || old.ino !== modes.ino) this.version++;
    return super.set(path, modes);
  }

  override delete(path: string): boolean {
    const had = super.delete(path);
    if (had) this.version++;
    return had;
  }

  override clear(): void {
    if (this.size > 0) this.version++;
    super.clear();
  }
}

export interface CacheTimeouts {
  attrTtlMs: number;
  entryTtlMs: number;
  negativeTtlMs: number;
}

// A rough bound on memory: past this many entries the oldest are dropped.
const MAX_ENTRIES = 200_000;

/** Whether `a`'s change time is later than `b`'s. */
function changedLater(a: Attr, b: Attr): boolean {
  const sa = Math.floor(a.ctimeMs / 1000);
  const sb = Math.floor(b.ctimeMs / 1000);
  return sa > sb || (sa === sb && a.ctimeNsec > b.ctimeNsec);
}

export class AttrCache {
  private readonly entries = new Map<string, Entry>();
  private readonly listings = new Map<string, Listing>();
  /** The cached names of each file with several names, by inode number (a name may be stale: checked at use). */
  private readonly sharedNames = new Map<number, Set<string>>();
  /**
   * Extended attributes known to be absent, by path. The kernel asks for security.capability
   * before every write(2) to a file; a file created through the mount has none, and a "no such
   * attribute" answer is kept like any other cached attribute.
   */
  private readonly absentXattrs = new Map<string, { names: Set<string>; all: boolean; expires: number }>();
  /**
   * The last mode and owner seen of each directory, kept past its attributes' expiry: the mount
   * answers a non-root caller from this cache only if these let it search every directory above
   * (remote-fs.ts cacheAnswers). They gate answers that expire themselves within the cache
   * timeout, are replaced whenever the directory's attributes arrive, and are dropped with the
   * directory, or when the agent refuses a caller (the modes may have changed on the slave).
   */
  private readonly dirModes = new DirModesByPath();
  /** Every path the four maps above hold, by directory: a subtree is dropped without a scan. */
  private readonly tree = new PathTree();

  /**
   * Moves whenever the slave is known to have changed behind our back: an answer fetched across
   * a change of its path (or of its directory) may predate it, so it is not kept (see
   * RemoteFs.getattr). By path, so that a busy directory elsewhere does not stop caching here.
   */
  generation = 0;
  private readonly changedAt = new Map<string, number>();
  /**
   * The same for changes made through us (a write, a change answered at once), kept apart: what
   * the mount itself wrote (whole-files.ts) stays true across its own writes.
   */
  local = 0;
  private readonly changedHereAt = new Map<string, number>();
  private allChangedHereAt = 0;
  private allChangedAt = 0;

  /**
   * Told when the cache learns that an answer it gave may have been wrong (a change sent ahead
   * of the agent's verdict was refused): the kernel holds that answer too, and must drop it.
   */
  onStale?: (path: string, entry: boolean) => void;

  constructor(private ttl: CacheTimeouts) {}

  /** New entries live this long (the slave's change feed came or went). */
  setTimeouts(ttl: CacheTimeouts): void {
    this.ttl = ttl;
  }

  /**
   * The slave changed `name` in `dir` (null: anything in it); `entry`: the name may now mean
   * another file or none, and the directory's own attributes changed with it.
   */
  slaveChanged(dir: string, name: string | null, entry: boolean): void {
    this.generation++;
    if (name === null) {
      this.allChangedAt = this.generation;
      this.dropTree(dir);
      return;
    }
    const path = posix.join(dir, name);
    this.markChanged(dir);
    this.markChanged(path);
    this.entries.delete(path);
    this.absentXattrs.delete(path);
    this.dirModes.delete(path);
    if (entry) {
      this.dropTree(path);
      this.entries.delete(dir);
      this.listings.delete(dir);
    }
  }


  private markChanged(path: string): void {
    if (this.changedAt.size >= MAX_ENTRIES) {
      this.changedAt.clear();
      this.allChangedAt = this.generation;
    }
    this.changedAt.set(path, this.generation);
  }

  /** Whether an answer about `path` (or a listing of it) fetched at `generation` may be kept. */
  unchangedSince(path: string, generation: number): boolean {
    if (generation === this.generation) return true;
    if (this.allChangedAt > generation) return false;
    return (this.changedAt.get(path) ?? 0) <= generation && (this.changedAt.get(posix.dirname(path)) ?? 0) <= generation;
  }

  get enabled(): boolean {
    return this.ttl.attrTtlMs > 0 || this.ttl.entryTtlMs > 0;
  }

  /** The cached attributes, null when the path is known not to exist, undefined when unknown. */
  lookup(path: string): Attr | null | undefined {
    const now = Date.now();
    const entry = this.entries.get(path);
    if (entry && entry.expires > now) {
      if (!entry.unsure) return entry.attr;
    } else if (entry) this.entries.delete(path);
    if (path === '/') return undefined; // its own listing is not where it is named
    const listing = this.listings.get(posix.dirname(path));
    if (listing && !listing.ahead && listing.expires > now && !listing.names.has(posix.basename(path))) return null;
    return undefined;
  }

  set(path: string, attr: Attr): void {
    if (this.ttl.attrTtlMs <= 0) return;
    if ((attr.mode & S_IFMT) === S_IFDIR) {
      if (this.dirModes.size >= MAX_ENTRIES) this.dirModes.clear();
      this.dirModes.set(path, { mode: attr.mode, uid: attr.uid, gid: attr.gid, ino: attr.ino });
    }
    this.file(path);
    // A file with several names is one inode: the kernel keeps its attributes once for all of
    // them (one node, mount/node-table.ts), and this cache, by name, would keep a copy per name
    // that a change through another name leaves stale. So the agent is asked.
    if (attr.nlink > 1 && (attr.mode & S_IFMT) !== S_IFDIR) {
      this.bound();
      this.entries.set(path, { attr, expires: Date.now() + this.ttl.attrTtlMs, unsure: true, shared: true });
      let names = this.sharedNames.get(attr.ino);
      if (!names) this.sharedNames.set(attr.ino, names = new Set());
      names.add(path);
      return;
    }
    this.bound();
    this.entries.set(path, { attr, expires: Date.now() + this.ttl.attrTtlMs });
  }

  /**
   * `path`'s inode changed through us (mode, owner, times, size, link count): `attr` is what it
   * is now, for every name of it.
   */
  changed(path: string, attr: Attr): void {
    this.changedHere(path);
    // Other names of a hard-linked inode are never cached (see set()), so none goes stale.
    this.set(path, attr);
  }

  /**
   * `path` changed through us: an answer about it fetched before (a getattr, a listing) predates
   * the change and must not replace what the change put here (`unchangedHereSince`).
   */
  private changedHere(path: string): void {
    this.local++;
    if (this.changedHereAt.size >= MAX_ENTRIES) {
      this.changedHereAt.clear();
      this.allChangedHereAt = this.local;
    }
    this.changedHereAt.set(path, this.local);
  }

  /** Whether an answer about `path` fetched at `local` (this.local then) predates no change of it through us. */
  unchangedHereSince(path: string, local: number): boolean {
    return local === this.local || (this.allChangedHereAt <= local && (this.changedHereAt.get(path) ?? 0) <= local);
  }

  /**
   * The file whose name `removed` went keeps another name, and is `attr` now (the unlink's
   * reply). Down to one name, that name's attributes are known again (git links each object it
   * writes and unlinks the temporary name: its next stat of the object needs no trip). Only a
   * name cached as this inode, its change time no later than the reply's, that `busy` (open:
   * a write may be on its way) does not hold.
   */
  kept(removed: string, attr: Attr, busy: (path: string) => boolean): void {
    const names = this.sharedNames.get(attr.ino);
    if (!names) return;
    names.delete(removed);
    const current = [...names].filter((name) => {
      const entry = this.entries.get(name);
      return entry?.shared && entry.attr?.ino === attr.ino;
    });
    if (current.length === 0) this.sharedNames.delete(attr.ino);
    if (attr.nlink !== 1 || current.length !== 1) return;
    const [name] = current as [string];
    const was = this.entries.get(name)?.attr;
    if (!was || busy(name) || changedLater(was, attr)) return;
    this.sharedNames.delete(attr.ino);
    this.set(name, attr);
  }

  /**
   * Replaces the guess `expected` with `attr` (none: forgets it) only if `expected` is still what
   * is cached for `path`: a reply that arrives late never overwrites what a later change put
   * there. The kernel is not told: it had the guess with attribute timeout 0 (provisional), so
   * it asks again anyway (telling it cost a notification per answered change, a tenth of the
   * mount's time in an untar). A refused guess goes by `mistaken`, which does tell it.
   */
  replace(path: string, expected: Attr, attr: Attr | undefined): void {
    const entry = this.entries.get(path);
    if (entry?.attr === expected) {
      if (!attr) this.entries.delete(path); // the agent says next time
      else {
        this.set(path, attr);
        if (entry.unsure) this.unsure(path); // written to since the change: the reply predates that
      }
    }
  }

  /**
   * `path`'s size, times or link count changed through us: `lookup` no longer answers (the agent
   * is asked next time), `lastKnown` still does.
   */
  unsure(path: string, writtenTo = 0): void {
    this.changedHere(path);
    const entry = this.entries.get(path);
    if (!entry?.attr) return;
    entry.unsure = true;
    // A copy at every change, so that an answer matched against the object (a guess's reply,
    // `settle`) changes nothing once something came after it; written past its end, with that
    // size: a guess made from lastKnown must not give the kernel a shorter file.
    entry.attr = { ...entry.attr, size: Math.max(entry.attr.size, writtenTo) };
  }

  /** What is cached of `path` while its size and times are unsure (`unsure`), to `settle` later. */
  unsureAttr(path: string): Attr | undefined {
    const entry = this.entries.get(path);
    return entry?.unsure && !entry.shared ? entry.attr ?? undefined : undefined;
  }

  /**
   * The agent's attributes of `path` as of after everything sent before the request for them:
   * kept if what is cached is still `expected` (unsureAttr), so that no change came between.
   */
  settle(path: string, expected: Attr, attr: Attr): void {
    const entry = this.entries.get(path);
    if (entry?.unsure && entry.attr === expected) this.set(path, attr);
  }

  /** The inode number and link count last cached for `path`, a file of several names included. */
  inodeOf(path: string): Attr | undefined {
    const entry = this.entries.get(path);
    return entry?.attr && entry.expires > Date.now() ? entry.attr : undefined;
  }

  /**
   * The attributes last cached for an existing `path`, their size, times and link count perhaps
   * moved since by a change through us (`unsure`): good for the kind, mode and owner, which only
   * a change of them moves (and the slave's own changes drop the entry). Never for the kernel.
   */
  lastKnown(path: string): Attr | undefined {
    const entry = this.entries.get(path);
    return entry?.attr && !entry.shared && entry.expires > Date.now() ? entry.attr : undefined;
  }

  /** The kind (S_IFMT bits) of an existing `path` as last cached, whatever else moved since. */
  kindOf(path: string): number | undefined {
    const entry = this.entries.get(path);
    return entry?.attr && entry.expires > Date.now() ? entry.attr.mode & S_IFMT : undefined;
  }

  setMissing(path: string): void {
    if (this.ttl.negativeTtlMs <= 0) return;
    this.bound();
    this.file(path);
    this.entries.set(path, { attr: null, expires: Date.now() + this.ttl.negativeTtlMs });
  }

  /** The names in `dir`, if a complete listing of it is cached. */
  listing(dir: string): string[] | undefined {
    const listing = this.listings.get(dir);
    if (!listing) return undefined;
    if (listing.expires > Date.now()) return [...listing.names];
    this.listings.delete(dir);
    return undefined;
  }

  /**
   * Whether a complete cached listing of `dir` holds `name`: undefined when none is cached. A
   * set lookup, not a copy of the names (listing): asked for every name an untar makes.
   */
  listed(dir: string, name: string): boolean | undefined {
    const listing = this.listings.get(dir);
    if (!listing || listing.expires <= Date.now()) return undefined;
    return listing.names.has(name);
  }

  /** Whether a complete cached listing says `dir` is empty. */
  knownEmpty(dir: string): boolean {
    const listing = this.listings.get(dir);
    return listing !== undefined && listing.expires > Date.now() && listing.names.size === 0;
  }

  /**
   * `ahead`: a listing the program has not read (Listing.ahead). One that comes ahead for a
   * directory whose listing the cache already holds whole (read by the program, or known from a
   * mkdir through us, and kept true by the feed and our own changes since) is not taken: it
   * would answer no "no such file" (`git add -A`, whose walk brings .git/objects's listing ahead,
   * then asked the agent about every objects/XX it was about to make), and it adds nothing.
   */
  setListing(dir: string, names: Iterable<string>, ahead = false): void {
    if (this.ttl.entryTtlMs <= 0) return;
    const now = Date.now();
    const held = this.listings.get(dir);
    if (ahead && held !== undefined && held.ahead !== true && held.expires > now) return;
    this.file(dir);
    this.listings.set(dir, { names: new Set(names), expires: now + this.ttl.entryTtlMs, ...(ahead ? { ahead } : {}) });
  }

  /** The program read `dir`'s cached listing: it now answers "no such file" too. */
  listingRead(dir: string): void {
    const listing = this.listings.get(dir);
    if (listing) listing.ahead = undefined;
  }

  /** A name appeared in its directory through us. */
  added(path: string, attr: Attr | undefined): void {
    this.listings.get(posix.dirname(path))?.names.add(posix.basename(path));
    this.unsure(posix.dirname(path)); // its mtime, size and link count changed
    if (attr) this.set(path, attr);
    else this.entries.delete(path);
  }

  /** A name disappeared from its directory through us; a directory takes its subtree along. */
  removed(path: string, isDirectory: boolean): void {
    this.listings.get(posix.dirname(path))?.names.delete(posix.basename(path));
    this.unsure(posix.dirname(path));
    if (isDirectory) this.dropTree(path);
    else this.entries.delete(path);
    this.absentXattrs.delete(path);
    this.setMissing(path);
  }

  renamed(from: string, to: string): void {
    const moved = this.entries.get(from);
    this.dropTree(to);
    // Descendants of a moved directory are looked up afresh; a moved file has none to scan for.
    if (moved?.attr && (moved.attr.mode & S_IFMT) !== S_IFDIR) this.entries.delete(from);
    else this.dropTree(from);
    this.absentXattrs.delete(from);
    this.absentXattrs.delete(to);
    this.listings.get(posix.dirname(from))?.names.delete(posix.basename(from));
    this.listings.get(posix.dirname(to))?.names.add(posix.basename(to));
    this.entries.delete(posix.dirname(from));
    this.entries.delete(posix.dirname(to));
    // A listing or an answer about either directory asked for before this is not kept.
    this.changedHere(posix.dirname(from));
    this.changedHere(posix.dirname(to));
    this.setMissing(from);
    if (!moved?.attr) return;
    this.set(to, moved.attr);
    // Its change time is the slave's (rename sets it), and a guess moved along stays one to
    // settle: known for what the mount predicts next, asked of the agent for a stat.
    this.unsure(to);
  }

  /**
   * renameat2's RENAME_EXCHANGE through us: the two names swapped files (directories with their
   * subtrees). Both names stay listed; what was known under either is asked again, and an answer
   * fetched before is not kept.
   */
  exchanged(a: string, b: string): void {
    this.generation++;
    for (const path of [a, b]) {
      this.markChanged(path);
      this.dropTree(path);
      this.absentXattrs.delete(path);
      this.dirModes.delete(path);
      this.entries.delete(posix.dirname(path)); // its times changed
    }
  }

  private absentNow(path: string) {
    const known = this.absentXattrs.get(path);
    if (known && known.expires <= Date.now()) this.absentXattrs.delete(path);
    return known !== undefined && known.expires > Date.now() ? known : undefined;
  }

  isXattrAbsent(path: string, name: string): boolean {
    const known = this.absentNow(path);
    return known !== undefined && (known.all || known.names.has(name));
  }

  /** Whether the agent said `path` has no extended attribute at all (its listing's `bare`). */
  hasNoXattrs(path: string): boolean {
    return this.absentNow(path)?.all === true;
  }

  setXattrAbsent(path: string, name: string): void {
    if (this.ttl.attrTtlMs <= 0) return;
    const known = this.absentNow(path);
    if (known) known.names.add(name);
    else {
      this.file(path);
      this.absentXattrs.set(path, { names: new Set([name]), all: false, expires: Date.now() + this.ttl.attrTtlMs });
    }
  }

  setNoXattrs(path: string): void {
    if (this.ttl.attrTtlMs <= 0) return;
    this.file(path);
    this.absentXattrs.set(path, { names: new Set(), all: true, expires: Date.now() + this.ttl.attrTtlMs });
  }

  forgetXattrs(path: string): void {
    this.absentXattrs.delete(path);
  }

  /** The last mode, owner and inode number seen of directory `dir`, for search checks and listings. */
  searchModes(dir: string): DirModes | undefined {
    return this.dirModes.get(dir);
  }

  /** Moves whenever a directory's last-seen modes are added, altered or dropped (searchModes). */
  get searchModesVersion(): number {
    return this.dirModes.version;
  }

  /**
   * The agent refused a caller below these directories: what we knew of their modes may be old.
   * The root's stay (the kernel never asks for them again; the mount fetched them at start):
   * stale, they only let the cache answer what it holds for a cache timeout anyway.
   */
  forgetSearchModes(path: string): void {
    for (let dir = path; dir !== '/'; dir = posix.dirname(dir)) this.dirModes.delete(dir);
  }

  /** Forgets every name cached as inode `ino` (changed through a handle whose name went). */
  forgetInode(ino: number): void {
    for (const [path, entry] of this.entries) if (entry.attr?.ino === ino) this.forget(path);
  }

  /** Forget what we know of `path` (its attributes changed in a way we cannot compute). */
  forget(path: string): void {
    this.entries.delete(path);
    this.dirModes.delete(path);
    this.onStale?.(path, false);
  }

  /**
   * What we reported of `path` was wrong (a removal, a creation or a change the agent refused
   * after it was answered): forget the name, its attributes and its directory's listing.
   */
  mistaken(path: string): void {
    this.entries.delete(path);
    this.entries.delete(posix.dirname(path));
    this.listings.delete(posix.dirname(path));
    this.onStale?.(path, true);
  }

  clear(): void {
    this.generation++;
    this.allChangedAt = this.generation;
    this.changedAt.clear();
    this.entries.clear();
    this.listings.clear();
    this.absentXattrs.clear();
    this.dirModes.clear();
    this.tree.clear();
  }

  private dropTree(path: string): void {
    this.entries.delete(path);
    this.listings.delete(path);
    this.dirModes.delete(path);
    for (const key of this.tree.takeBelow(path)) {
      this.entries.delete(key);
      this.listings.delete(key);
      this.dirModes.delete(key);
      this.absentXattrs.delete(key);
    }
  }

  /**
   * Files a path about to be kept in one of the maps. Keys deleted on their own stay filed: past
   * twice what the maps hold (and a margin, so that small caches are not rebuilt often), the
   * tree is built again from their keys, which costs what they hold, once per as many filings.
   */
  private file(path: string): void {
    this.tree.add(path);
    const held = this.entries.size + this.listings.size + this.dirModes.size + this.absentXattrs.size;
    if (this.tree.size <= 2 * held + 10_000) return;
    this.tree.clear();
    for (const map of [this.entries, this.listings, this.dirModes, this.absentXattrs]) for (const key of map.keys()) this.tree.add(key);
    this.tree.add(path);
  }

  private bound(): void {
    if (this.sharedNames.size >= MAX_ENTRIES) this.sharedNames.clear();
    if (this.entries.size < MAX_ENTRIES) return;
    const now = Date.now();
    for (const [key, entry] of this.entries) if (entry.expires <= now) this.entries.delete(key);
    // Still full: drop the oldest tenth (Map keeps insertion order).
    let drop = this.entries.size >= MAX_ENTRIES ? MAX_ENTRIES / 10 : 0;
    for (const key of this.entries.keys()) {
      if (drop-- <= 0) break;
      this.entries.delete(key);
    }
  }
}
