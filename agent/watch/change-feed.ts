/**
 * The slave's change feed (protocol/changes.ts): watches the directories masters have asked
 * about, and publishes what changes in them, numbered, batched, with a heartbeat, and with a
 * `lost` mark whenever a change may have gone unseen (overflow, a watch that failed, the
 * watcher's death). Masters keep names and attributes in their kernels for long on the strength
 * of it, so the rule is: never a silent gap.
 *
 * A directory is watched *before* the first request naming it runs (cover): what that request
 * answers is then either unchanged or reported. Requests that arrive meanwhile wait behind it,
 * so the agent still applies one connection's requests in order (docs/protocol.md, Ordering).
 *
 * In fanotify mode the watcher's filesystem mark reports every change on the export root's
 * filesystem by slave path, so a directory needs no watch of its own: the watcher says it is
 * covered (answer 0) and the agent remembers that (a Map, as for watches), or gives it an
 * inotify watch when the mark would not report it under the path requests name (another
 * filesystem mounted inside the root, a bind mount, a path through a symlink).
 */
import { posix } from 'node:path';
import type { Logger } from 'pino';
import { nameFromBytes, type FeedMode, type FeedState, type OpName } from '../../protocol/index.js';
import type { RootJail } from '../root-jail.js';
import { withTimeout } from '../with-timeout.js';
import { IN, meaningOf } from './change-kinds.js';
import { ChangePublisher } from './change-publisher.js';
import type { ChangeWatchBackend, Watcher, WatchMode } from '../backends/change-watch-backend.js';
import { WatchSet, dirsOf, normalDir } from './watch-set.js';

export interface AgentChangeFeedOptions {
  /** The platform's watcher (agent/backends); failing to start: no feed (state off). */
  backend: ChangeWatchBackend;
  /** The watcher program to run instead of the platform's own (--watch-watcher). */
  program?: string;
  /** Most directories watched at once; 0: no feed. */
  watchMax: number;
  jail: RootJail;
  boot: string;
  maxPayload: number;
  /** agent --change messages--> masters */
  publish(data: Uint8Array): void;
  log: Logger;
  heartbeatMs?: number;
  /** auto (default): fanotify where the kernel and privileges allow, else inotify. */
  mode?: WatchMode;
}

const HEARTBEAT_MS = 1000;
/** How long a watcher may take over one command before the agent goes on without it. */
const COMMAND_TIMEOUT_MS = 1000;
/** After a watch could not be added: degraded at least this long. */
const WATCH_FAILED_HOLD_MS = 1000;
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5000;
const NOTHING_THERE = new Set([-2 /* ENOENT */, -20 /* ENOTDIR */]);
const ENOSPC = -28;
const PATH_FIELDS = ['path', 'from', 'to', 'existing'] as const;
/** Most directories remembered as covered by the fanotify mark (the oldest tenth is forgotten
 * first: it costs a round trip to the watcher when named again, and nothing to masters). */
const COVERED_MAX = 65_536;
/** A directory's own entry changed: what was cached below it is wrong too. */
const DIR_ENTRY = IN.DELETE | IN.MOVED_FROM | IN.MOVED_TO;
const ONDIR = 0x4000_0000;
/** How long a change made for a master is recognised in the events that report it. */
const MADE_FOR_MS = 2000;
/** Most such changes remembered (the oldest tenth go first: their events then reach every master). */
const MADE_FOR_MAX = 65_536;

/**
 * Forgets the oldest tenth of `map` (a Map keeps insertion order). A tenth at a time, not one
 * per insertion: a Map keeps a deleted entry's slot until it is rebuilt, and a new iterator steps
 * over every such slot from the start, so dropping the single oldest at each insertion of a full
 * map cost 7-20 µs a time instead of 1 (a long-lived agent's every change, once it had named
 * 65,536 paths).
 */
export function dropOldestTenth(map: Map<string, unknown>): void {
  let drop = Math.ceil(map.size / 10);
  for (const key of map.keys()) {
    if (drop-- <= 0) break;
    map.delete(key);
  }
}

/** The default --watch-max: half the kernel's per-user limit, at most 65,536. */
export function defaultWatchMax(maxUserWatches: number | undefined): number {
  return Math.max(1, Math.min(65_536, Math.floor((maxUserWatches ?? 8192) / 2)));
}

export class AgentChangeFeed {
  private watcher: Watcher | undefined;
  private mode: 'inotify' | 'fanotify' | undefined;
  private everStarted = false;
  private stopped = false;
  private readonly watches: WatchSet;
  /** fanotify mode: request directories the mark reports under that very path. */
  private readonly covered = new Map<string, true>();
  private fallbackLogged = false;
  private readonly adding = new Map<string, Promise<void>>();
  /** Resolves once every watch asked for so far is in place: later requests wait for it. */
  private gate: Promise<void> | undefined;
  /** Bumped when the watcher's watches are all dropped: answers of before are stale. */
  private epoch = 0;
  private overflowing = false;
  private watchFailedUntil = 0;
  private restartDelay = RESTART_MIN_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly out: ChangePublisher;
  /**
   * Names the agent is changing for a master, by the slave path fanotify reports them under
   * (the real one, through no symlink): the master's id (null: several), and when.
   */
  private readonly madeFor = new Map<string, { origin: string | null; at: number }>();
  /** realKey's answers in this turn, by request path. */
  private readonly turnKeys = new Map<string, string | undefined>();

  constructor(private readonly options: AgentChangeFeedOptions) {
    this.watches = new WatchSet(options.watchMax);
    this.out = new ChangePublisher({
      boot: options.boot, maxPayload: options.maxPayload, publish: options.publish, state: () => this.state,
      heartbeatMs: options.heartbeatMs ?? HEARTBEAT_MS,
    });
  }

  /** Starts the watcher; without one the feed stays off (logged once). */
  async start(): Promise<void> {
    if (this.options.watchMax > 0) await this.startWatcher();
    if (this.mode === undefined) this.options.log.warn({ program: this.options.program, watchMax: this.options.watchMax }, 'no change feed: masters will not keep caches for long');
    this.out.beat();
  }

  get state(): FeedState {
    if (!this.everStarted) return 'off';
    if (this.watcher === undefined || this.overflowing || Date.now() < this.watchFailedUntil) return 'degraded';
    return 'live';
  }

  /** As hello and status show it. */
  get feedMode(): FeedMode {
    const state = this.state;
    return state === 'live' ? this.mode ?? 'off' : state;
  }

  stats(): { mode: FeedMode; seq: number; watches: number; lost: number } {
    return { mode: this.feedMode, seq: this.out.seq, watches: this.watches.size, lost: this.out.lost };
  }

  /**
   * Watches the directories a request names, before it runs. Undefined when every one is
   * watched already and nothing waits (the common case: Map lookups only); else a promise the
   * request must await before running.
   */
  cover(op: OpName, args: object): Promise<void> | undefined {
    if (this.watcher === undefined || !op.startsWith('fs.')) return this.gate;
    const fields = args as Partial<Record<(typeof PATH_FIELDS)[number], unknown>>;
    let misses: Promise<void>[] | undefined;
    const need = (dir: string) => {
      if (this.covered.has(dir) || this.watches.touch(dir)) return;
      (misses ??= []).push(this.adding.get(dir) ?? this.watch(dir));
    };
    for (const field of PATH_FIELDS) {
      const path = fields[field];
      if (typeof path === 'string') need(path === '/' ? '/' : posix.dirname(path));
    }
    if (op === 'fs.readdir' && typeof fields.path === 'string') need(fields.path);
    if (misses === undefined) return this.gate;
    const gate = Promise.all(this.gate === undefined ? misses : [this.gate, ...misses]).then(() => undefined);
    this.gate = gate;
    void gate.then(() => { if (this.gate === gate) this.gate = undefined; });
    return gate;
  }

  /**
   * The agent made directory `host` (slave path `slavePath`) by mkdir: in fanotify mode, with
   * its parent covered, the mark reports it under that path too (a new directory is on its
   * parent's filesystem, and no symlink leads to it), so it is covered without asking the
   * watcher. Asking held every request behind a round trip to the watcher process at the first
   * request in each new directory (an untar's every directory).
   */
  madeDirectory(slavePath: string, host: string): void {
    if (this.mode !== 'fanotify' || this.watcher === undefined) return;
    const key = normalDir(slavePath);
    if (key === '/' || host !== this.direct(key) || !this.covered.has(posix.dirname(key))) return;
    this.markCovered(key);
  }

  /** Remembers that the mark reports directory `key` under that path (the oldest go first). */
  private markCovered(key: string): void {
    if (this.covered.size >= COVERED_MAX) dropOldestTenth(this.covered);
    this.covered.set(key, true);
  }

  /**
   * A request of master `origin` is about to change `paths` (slave paths: their entries or their
   * inodes). fanotify will report those changes as the agent's own doing, under their real
   * paths; so tagged (protocol/changes.ts), the master that asked can skip them: it corrected
   * its caches when it was answered, and its own changes coming back would only make it forget
   * what it knows (a directory it listed, the names it just made). inotify cannot say who made a
   * change: in that mode nothing is tagged. A name changed for two masters at once, or through
   * paths this cannot see (a hard link's other names), is tagged for nobody: every master applies it.
   */
  madeBy(origin: string, paths: readonly string[]): void {
    if (this.mode !== 'fanotify') return;
    const now = Date.now();
    for (const path of paths) {
      const key = this.realKey(path);
      if (key === undefined) continue;
      const known = this.madeFor.get(key);
      const mixed = known !== undefined && now - known.at < MADE_FOR_MS && known.origin !== origin;
      this.madeFor.delete(key); // kept in the order of use, the oldest first
      this.madeFor.set(key, { origin: mixed ? null : origin, at: now });
    }
    if (this.madeFor.size > MADE_FOR_MAX) dropOldestTenth(this.madeFor);
  }

  /**
   * Directories moved or removed by the agent: the real keys remembered for this turn may lead
   * elsewhere now (dispatch.ts, after a rename or rmdir).
   */
  pathsMoved(): void {
    this.turnKeys.clear();
  }

  /**
   * The name `path` as fanotify reports it: `dir\0name` with dir its real slave path. Kept until
   * the current turn's microtasks run: a batch runs its requests in one synchronous go, and a
   * file's create, data, owner, mode, times and release all name the same path (one resolution
   * instead of six).
   */
  private realKey(path: string): string | undefined {
    if (this.turnKeys.has(path)) return this.turnKeys.get(path);
    const key = this.resolveKey(path);
    if (this.turnKeys.size === 0) queueMicrotask(() => this.turnKeys.clear());
    this.turnKeys.set(path, key);
    return key;
  }

  private resolveKey(path: string): string | undefined {
    const slave = normalDir(path);
    if (slave === '/') return '/\0';
    const dirSlave = posix.dirname(slave);
    // A directory verified before (the request's own resolution checks it again): one lstat.
    let host = this.options.jail.directDir(dirSlave);
    if (host === undefined) {
      try {
        host = this.options.jail.resolve(dirSlave, true);
      } catch {
        return undefined; // nothing there: the request fails, and changes nothing
      }
    }
    const root = this.options.jail.root;
    let dir: string;
    if (root === '/') dir = host;
    else if (host === root) dir = '/';
    else if (host.startsWith(`${root}/`)) dir = host.slice(root.length);
    else return undefined;
    return `${dir}\0${posix.basename(slave)}`;
  }

  /**
   * Who made the change an event of process `pid` reports (null: the slave, or not known). An
   * event of a directory itself (name '': its attributes) is its name in its parent's, as
   * madeBy keyed it (keyed by the directory alone, every chmod, chown and utimens of a directory
   * went out as the slave's: a third of an untar's feed, each one a needless invalidation).
   */
  private originOf(pid: number, dir: string, name: string, mask: number): string | null {
    if (pid !== process.pid) return null;
    const key = name !== '' ? `${dir}\0${name}` : dir === '/' ? '/\0' : `${posix.dirname(dir)}\0${posix.basename(dir)}`;
    const made = this.madeFor.get(key);
    if (made === undefined) return null;
    // The agent's own close of a file written through it: after the next commit (fs/commits.ts),
    // seconds after the last request that named it, so past MADE_FOR_MS. It changes nothing a
    // master caches (the writes were reported as they came): whoever last changed the name
    // through the agent made it. Untagged, it made the master that wrote the file forget it.
    const closeOnly = (mask & IN.CLOSE_WRITE) !== 0 && (mask & ~(IN.CLOSE_WRITE | ONDIR)) === 0;
    return closeOnly || Date.now() - made.at < MADE_FOR_MS ? made.origin : null;
  }

  /** Adds the watch for the request directory `key`; never rejects. */
  private watch(key: string): Promise<void> {
    const adding = this.add(key).finally(() => this.adding.delete(key));
    this.adding.set(key, adding);
    return adding;
  }

  private async add(key: string, retry = true): Promise<void> {
    const watcher = this.watcher;
    if (watcher === undefined) return;
    let host: string;
    try {
      host = this.options.jail.resolve(normalDir(key), true);
    } catch {
      return; // nothing there: nothing to cache either
    }
    const epoch = this.epoch;
    // Through a symlink the host path is not the root joined with the slave path: the mark would
    // report it under its own path, so it gets a watch that reports it under this one.
    const aliased = host !== this.direct(key);
    const wd = await withTimeout(watcher.add(host, aliased).catch(() => undefined), COMMAND_TIMEOUT_MS);
    if (epoch !== this.epoch) return this.add(key, retry); // answered by a watcher instance since dropped
    if (wd === undefined) return this.watchFailed(key, 'no answer from the watcher');
    if (wd === ENOSPC && retry && this.watches.size > 1) {
      // The user's inotify watches are used up (fs.inotify.max_user_watches, shared with every
      // process of this user): watch fewer directories rather than lose every cache each time.
      this.watches.max = Math.max(1, Math.floor(this.watches.size * 0.9));
      this.options.log.warn({ watchMax: this.watches.max }, 'no more inotify watches for this user: watching fewer directories');
      this.evict(watcher);
      return this.add(key, false);
    }
    if (wd < 0) {
      if (!NOTHING_THERE.has(wd)) this.watchFailed(key, `errno ${-wd}`);
      return;
    }
    if (wd === 0) {
      this.markCovered(key);
      return;
    }
    this.watches.add(key, wd);
    this.evict(watcher);
  }

  /** The host path of slave directory `key` when no symlink is on the way. */
  private direct(key: string): string {
    const dir = normalDir(key);
    const root = this.options.jail.root;
    if (dir === '/') return root;
    return root === '/' ? dir : root + dir;
  }

  private evict(watcher: Watcher): void {
    const { dirs, unused } = this.watches.evict();
    for (const dir of dirs) this.out.change([dir, null, 'entry']);
    for (const old of unused) watcher.remove(old);
  }

  private watchFailed(key: string, why: string): void {
    this.options.log.warn({ dir: key, why }, 'a directory could not be watched: the feed is degraded');
    this.watchFailedUntil = Date.now() + WATCH_FAILED_HOLD_MS;
    this.out.lose('watch-failed');
    setTimeout(() => this.out.schedule(), WATCH_FAILED_HOLD_MS + 10).unref();
  }

  /**
   * Resolves once every change the slave made before now has been published; answers the
   * feed's position then (fs.changes, and a process's exit).
   */
  async sync(): Promise<{ seq: number; state: FeedState }> {
    const watcher = this.watcher;
    if (watcher !== undefined) await withTimeout(watcher.sync().catch(() => undefined), COMMAND_TIMEOUT_MS);
    this.out.flush();
    return { seq: this.out.seq, state: this.state };
  }

  private async startWatcher(): Promise<void> {
    try {
      const { watcher, mode, why } = await this.options.backend.start({
        hostRoot: this.options.jail.root, mode: this.options.mode ?? 'auto', program: this.options.program, log: this.options.log,
      }, {
        event: (wd, mask, name) => this.onEvent(wd, mask, name),
        dirEvent: (mask, dir, name, pid) => this.onDirEvent(mask, dir, name, pid),
        turn: () => this.out.schedule(),
        died: (reason) => this.onDied(reason),
      });
      if (this.stopped) {
        watcher.stop();
        return;
      }
      this.watcher = watcher;
      this.mode = mode === 'fanotify' ? 'fanotify' : 'inotify';
      this.everStarted = true;
      this.restartDelay = RESTART_MIN_MS;
      this.options.log.info({ mode, pid: watcher.pid }, 'change feed watching');
      if (why !== undefined && !this.fallbackLogged) {
        this.fallbackLogged = true;
        this.options.log.info({ why }, 'no fanotify: the change feed watches each directory with inotify');
      }
      this.out.schedule();
    } catch (err) {
      if (this.everStarted) {
        this.options.log.warn({ err }, 'the change watcher did not start again');
        this.restartLater();
      }
    }
  }

  private onDied(reason: string): void {
    this.options.log.warn({ reason }, 'the change watcher died: the feed is degraded until it runs again');
    this.watcher = undefined;
    this.dropAll();
    this.out.lose('restart');
    this.restartLater();
  }

  private restartLater(): void {
    if (this.stopped) return;
    this.restartTimer = setTimeout(() => void this.startWatcher(), this.restartDelay);
    this.restartDelay = Math.min(RESTART_MAX_MS, this.restartDelay * 2);
  }

  private dropAll(): void {
    this.epoch++;
    this.watches.clear();
    this.covered.clear();
  }

  private onEvent(wd: number, mask: number, rawName: Buffer): void {
    if (mask & IN.Q_OVERFLOW) {
      this.overflowed();
      return;
    }
    const watch = this.watches.byDescriptor(wd);
    if (watch === undefined) return; // one we dropped
    // Bytes as the slave has them: names that are not UTF-8 in surrogateescape form, as readdir
    // answers them (protocol/name-bytes.ts), so masters invalidate exactly that name.
    const name = nameFromBytes(rawName);
    let ended = false;
    for (const dir of dirsOf(watch)) {
      const meaning = meaningOf(dir, mask, name);
      ended ||= meaning.ended;
      for (const change of meaning.changes) this.out.change(change);
    }
    if (ended) {
      this.watches.drop(wd);
      if (!(mask & IN.IGNORED)) this.watcher?.remove(wd);
    }
  }

  /** A fanotify event: the watcher named the slave directory itself. */
  private onDirEvent(mask: number, rawDir: Buffer, rawName: Buffer, pid: number): void {
    const dir = nameFromBytes(rawDir);
    const name = nameFromBytes(rawName);
    const origin = this.originOf(pid, dir, name, mask);
    const meaning = meaningOf(dir, mask, name);
    for (const change of meaning.changes) this.out.change(change, origin);
    // The mark has no watch that ends with a directory (its children's events name it by its
    // new path, or not at all once it is gone), so its own entry says to forget what was below.
    if (name !== '' && (mask & ONDIR) && (mask & DIR_ENTRY)) this.out.change([posix.join(dir, name), null, 'entry'], origin);
    if (meaning.ended) this.covered.delete(dir);
  }

  /** The kernel dropped events: masters forget everything; so do we, and start over. */
  private overflowed(): void {
    const watcher = this.watcher;
    if (watcher === undefined || this.overflowing) return;
    this.options.log.warn('the change watcher\'s queue overflowed: masters forget what they cached');
    this.overflowing = true;
    this.dropAll();
    this.out.lose('overflow');
    watcher.reset().then(() => {
      this.overflowing = false;
      this.out.schedule();
    }, () => undefined); // its death is reported as such
  }

  stop(): void {
    this.stopped = true;
    this.out.stop();
    clearTimeout(this.restartTimer);
    this.watcher?.stop();
    this.watcher = undefined;
  }
}
