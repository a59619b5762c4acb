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
 */
import { posix } from 'node:path';
import type { Logger } from 'pino';
import {
  encodeChangeMessage, type FeedMode, type FeedState, type LostReason, type OpName, type SlaveChangeTuple,
} from '../../protocol/index.js';
import type { RootJail } from '../root-jail.js';
import { IN, meaningOf } from './change-kinds.js';
import { WatchHelper } from './watch-helper.js';
import { WatchSet, dirsOf, normalDir } from './watch-set.js';

export interface AgentChangeFeedOptions {
  /** The watcher binary (native/); missing or failing: no feed (state off). */
  binary: string;
  /** Most directories watched at once; 0: no feed. */
  watchMax: number;
  jail: RootJail;
  boot: string;
  maxPayload: number;
  /** agent --change messages--> masters */
  publish(data: Uint8Array): void;
  log: Logger;
  heartbeatMs?: number;
}

const HEARTBEAT_MS = 1000;
/** How long a watcher may take over one command before the agent goes on without it. */
const COMMAND_TIMEOUT_MS = 1000;
/** After a watch could not be added: degraded at least this long. */
const WATCH_FAILED_HOLD_MS = 1000;
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5000;
const NOTHING_THERE = new Set([-2 /* ENOENT */, -20 /* ENOTDIR */]);
const PATH_FIELDS = ['path', 'from', 'to', 'existing'] as const;

/** The default --watch-max: half the kernel's per-user limit, at most 65,536. */
export function defaultWatchMax(maxUserWatches: number | undefined): number {
  return Math.max(1, Math.min(65_536, Math.floor((maxUserWatches ?? 8192) / 2)));
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), ms); })])
    .finally(() => clearTimeout(timer));
}

export class AgentChangeFeed {
  private helper: WatchHelper | undefined;
  private mode: 'inotify' | 'fanotify' | undefined;
  private everStarted = false;
  private stopped = false;
  private readonly watches: WatchSet;
  private readonly adding = new Map<string, Promise<void>>();
  /** Resolves once every watch asked for so far is in place: later requests wait for it. */
  private gate: Promise<void> | undefined;
  /** Bumped when the watcher's watches are all dropped: answers of before are stale. */
  private epoch = 0;
  private seq = 0;
  private readonly pending = new Map<string, SlaveChangeTuple>();
  private pendingLost: LostReason | undefined;
  private flushScheduled = false;
  private lastState: FeedState | undefined;
  private overflowing = false;
  private watchFailedUntil = 0;
  private lostCount = 0;
  private restartDelay = RESTART_MIN_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly options: AgentChangeFeedOptions) {
    this.watches = new WatchSet(options.watchMax);
    this.heartbeat = setInterval(() => this.beat(), options.heartbeatMs ?? HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Starts the watcher; without one the feed stays off (logged once). */
  async start(): Promise<void> {
    if (this.options.watchMax > 0) await this.startWatcher();
    if (this.mode === undefined) this.options.log.warn({ binary: this.options.binary, watchMax: this.options.watchMax }, 'no change feed: masters will not keep caches for long');
    this.beat();
  }

  get state(): FeedState {
    if (!this.everStarted) return 'off';
    if (this.helper === undefined || this.overflowing || Date.now() < this.watchFailedUntil) return 'degraded';
    return 'live';
  }

  /** As hello and status show it. */
  get feedMode(): FeedMode {
    const state = this.state;
    return state === 'live' ? this.mode ?? 'off' : state;
  }

  stats(): { mode: FeedMode; seq: number; watches: number; lost: number } {
    return { mode: this.feedMode, seq: this.seq, watches: this.watches.size, lost: this.lostCount };
  }

  /**
   * Watches the directories a request names, before it runs. Undefined when every one is
   * watched already and nothing waits (the common case: Map lookups only); else a promise the
   * request must await before running.
   */
  cover(op: OpName, args: object): Promise<void> | undefined {
    if (this.helper === undefined || !op.startsWith('fs.')) return this.gate;
    const fields = args as Partial<Record<(typeof PATH_FIELDS)[number], unknown>>;
    let misses: Promise<void>[] | undefined;
    const need = (dir: string) => {
      if (this.watches.touch(dir)) return;
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

  /** Adds the watch for the request directory `key`; never rejects. */
  private watch(key: string): Promise<void> {
    const adding = this.add(key).finally(() => this.adding.delete(key));
    this.adding.set(key, adding);
    return adding;
  }

  private async add(key: string): Promise<void> {
    const helper = this.helper;
    if (helper === undefined) return;
    let host: string;
    try {
      host = this.options.jail.resolve(normalDir(key), true);
    } catch {
      return; // nothing there: nothing to cache either
    }
    const epoch = this.epoch;
    const wd = await withTimeout(helper.add(host).catch(() => undefined), COMMAND_TIMEOUT_MS);
    if (epoch !== this.epoch) return this.add(key); // answered by a watcher instance since dropped
    if (wd === undefined) return this.watchFailed(key, 'no answer from the watcher');
    if (wd < 0) {
      if (!NOTHING_THERE.has(wd)) this.watchFailed(key, `errno ${-wd}`);
      return;
    }
    this.watches.add(key, wd);
    const { dirs, unused } = this.watches.evict();
    for (const dir of dirs) this.change([dir, null, 'entry']);
    for (const old of unused) helper.remove(old);
  }

  private watchFailed(key: string, why: string): void {
    this.options.log.warn({ dir: key, why }, 'a directory could not be watched: the feed is degraded');
    this.watchFailedUntil = Date.now() + WATCH_FAILED_HOLD_MS;
    this.lose('watch-failed');
    setTimeout(() => this.schedule(), WATCH_FAILED_HOLD_MS + 10).unref();
  }

  /**
   * Resolves once every change the slave made before now has been published; answers the
   * feed's position then (fs.changes, and a process's exit).
   */
  async sync(): Promise<{ seq: number; state: FeedState }> {
    const helper = this.helper;
    if (helper !== undefined) await withTimeout(helper.sync().catch(() => undefined), COMMAND_TIMEOUT_MS);
    this.flush();
    return { seq: this.seq, state: this.state };
  }

  private async startWatcher(): Promise<void> {
    try {
      const { helper, mode } = await WatchHelper.start(this.options.binary, {
        event: (wd, mask, name) => this.onEvent(wd, mask, name),
        turn: () => this.schedule(),
        died: (reason) => this.onDied(reason),
      }, this.options.log);
      if (this.stopped) {
        helper.stop();
        return;
      }
      this.helper = helper;
      this.mode = mode === 'fanotify' ? 'fanotify' : 'inotify';
      this.everStarted = true;
      this.restartDelay = RESTART_MIN_MS;
      this.options.log.info({ mode, pid: helper.pid }, 'change feed watching');
      this.schedule();
    } catch (err) {
      if (this.everStarted) {
        this.options.log.warn({ err }, 'the change watcher did not start again');
        this.restartLater();
      }
    }
  }

  private onDied(reason: string): void {
    this.options.log.warn({ reason }, 'the change watcher died: the feed is degraded until it runs again');
    this.helper = undefined;
    this.dropAll();
    this.lose('restart');
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
  }

  private onEvent(wd: number, mask: number, rawName: Buffer): void {
    if (mask & IN.Q_OVERFLOW) {
      this.overflowed();
      return;
    }
    const watch = this.watches.byDescriptor(wd);
    if (watch === undefined) return; // one we dropped
    // Names as Node's readdir gives them (the protocol's names are strings today).
    const name = rawName.toString();
    let ended = false;
    for (const dir of dirsOf(watch)) {
      const meaning = meaningOf(dir, mask, name);
      ended ||= meaning.ended;
      for (const change of meaning.changes) this.change(change);
    }
    if (ended) {
      this.watches.drop(wd);
      if (!(mask & IN.IGNORED)) this.helper?.remove(wd);
    }
  }

  /** The kernel dropped events: masters forget everything; so do we, and start over. */
  private overflowed(): void {
    const helper = this.helper;
    if (helper === undefined || this.overflowing) return;
    this.options.log.warn('the change watcher\'s queue overflowed: masters forget what they cached');
    this.overflowing = true;
    this.dropAll();
    this.lose('overflow');
    helper.reset().then(() => {
      this.overflowing = false;
      this.schedule();
    }, () => undefined); // its death is reported as such
  }

  private lose(reason: LostReason): void {
    this.lostCount++;
    this.pendingLost ??= reason;
    this.pending.clear(); // masters forget everything anyway
    this.schedule();
  }

  private change(change: SlaveChangeTuple): void {
    this.pending.set(`${change[0]}\0${change[1] ?? ''}\0${change[2]}`, change);
  }

  /** Sends what gathered once this turn's records are all in (one watcher read, one message). */
  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const state = this.state;
    if (this.pending.size === 0 && this.pendingLost === undefined && state === this.lastState) return;
    const changes = [...this.pending.values()];
    this.pending.clear();
    const lost = this.pendingLost;
    this.pendingLost = undefined;
    const budget = Math.max(4096, this.options.maxPayload - 1024);
    let at = 0;
    do {
      let bytes = 0;
      let end = at;
      while (end < changes.length) {
        const [dir, name] = changes[end] as SlaveChangeTuple;
        const cost = Buffer.byteLength(dir) + Buffer.byteLength(name ?? '') + 16;
        if (bytes + cost > budget && end > at) break;
        bytes += cost;
        end++;
      }
      const batch = changes.slice(at, end);
      const first = at === 0 && lost !== undefined;
      this.seq += batch.length + (first ? 1 : 0);
      this.send(batch, state, first ? lost : undefined);
      at = end;
    } while (at < changes.length);
  }

  private beat(): void {
    this.flush();
    this.send([], this.state, undefined);
  }

  private send(changes: SlaveChangeTuple[], state: FeedState, lost: LostReason | undefined): void {
    this.lastState = state;
    this.options.publish(encodeChangeMessage({
      boot: this.options.boot, seq: this.seq, changes, state, ...(lost === undefined ? {} : { lost }),
    }));
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.restartTimer);
    this.helper?.stop();
    this.helper = undefined;
  }
}
