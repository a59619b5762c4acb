/**
 * The change feed's wire side (protocol/changes.ts): numbers changes, gathers them into one
 * message (deduplicated, split to fit max_payload), marks losses, and beats every second. What is
 * watched and why lives in change-feed.ts.
 *
 * A change goes out at the end of the turn it was read in: a master sees what the slave's own
 * processes change at once, however often. Only a burst of changes that masters made (BURST
 * messages within GATHER_MS: an untar, `rm -rf`, a build through a mount) is gathered for
 * GATHER_MS into one message: one per operation was three bus messages per file of an untar
 * (issue 24), which the master that made them skips as its own, and other masters see
 * GATHER_MS later, well within the coherence bound. A barrier (change-feed.ts sync) flushes at once.
 */
import {
  encodeChangeMessage, type FeedState, type LostReason, type SlaveChangeTuple,
} from '../../protocol/index.js';

export interface ChangePublisherOptions {
  boot: string;
  maxPayload: number;
  /** agent --change messages--> masters */
  publish(data: Uint8Array): void;
  /** The feed's state now (sent in every message; a change of it is sent at once). */
  state(): FeedState;
  heartbeatMs: number;
}

/** In a burst, how long changes are gathered into one message. */
const GATHER_MS = 10;
/** Messages with changes within GATHER_MS that make a burst. */
const BURST = 4;

export class ChangePublisher {
  private seqNow = 0;
  /** What waits, once per change, with the master that made it (null: the slave, or mixed). */
  private readonly pending = new Map<string, { change: SlaveChangeTuple; origin: string | null }>();
  private pendingLost: LostReason | undefined;
  private flushScheduled = false;
  private lastState: FeedState | undefined;
  private losses = 0;
  private readonly heartbeat: NodeJS.Timeout;
  /** When the last BURST messages with changes went out (performance.now()), oldest first. */
  private readonly recent: number[] = [];
  /** In a burst: gathering goes on while each window gathers more than one change. */
  private bursting = false;
  /** The burst's window, while one is open. */
  private gatherTimer: NodeJS.Timeout | undefined;
  /** Something waiting was not made by a master alone (the slave's own, or mixed): it goes at once. */
  private slaveMadePending = false;

  constructor(private readonly options: ChangePublisherOptions) {
    this.heartbeat = setInterval(() => this.beat(), options.heartbeatMs);
    this.heartbeat.unref();
  }

  /** The sequence number of the last change (or loss) published. */
  get seq(): number {
    return this.seqNow;
  }

  get lost(): number {
    return this.losses;
  }

  /** `origin`: the master whose request made the change (protocol/changes.ts), null if not one. */
  change(change: SlaveChangeTuple, origin: string | null = null): void {
    const key = `${change[0]}\0${change[1] ?? ''}\0${change[2]}`;
    const waiting = this.pending.get(key);
    // Made by two parties in one turn: whoever skips it as its own would miss the other's.
    if (waiting !== undefined) waiting.origin = waiting.origin === origin ? origin : null;
    else this.pending.set(key, { change, origin });
    if ((waiting === undefined ? origin : waiting.origin) === null) this.slaveMadePending = true;
  }

  /** Changes may have gone unseen: masters forget everything, so what waits is dropped. */
  lose(reason: LostReason): void {
    this.losses++;
    this.pendingLost ??= reason;
    this.pending.clear();
    this.slaveMadePending = false; // the loss itself goes at once
    this.schedule();
  }

  /** Sends what gathered once this turn's records are all in, or, while changes keep coming, a little later. */
  schedule(): void {
    const slaveMade = this.slaveMadePending || this.pendingLost !== undefined;
    if (this.flushScheduled) {
      // A window is open, and the slave changed something itself: that goes now, with the rest.
      if (slaveMade && this.gatherTimer !== undefined) {
        clearTimeout(this.gatherTimer);
        this.gatherTimer = undefined;
        setImmediate(() => this.scheduledFlush(false));
      }
      return;
    }
    this.flushScheduled = true;
    const burst = this.bursting || (this.recent.length === BURST && performance.now() - (this.recent[0] as number) < GATHER_MS);
    if (burst && !slaveMade) this.gatherTimer = setTimeout(() => this.scheduledFlush(true), GATHER_MS);
    else setImmediate(() => this.scheduledFlush(false));
  }

  private scheduledFlush(gathered: boolean): void {
    this.flushScheduled = false;
    this.gatherTimer = undefined;
    this.flush(gathered);
  }

  /** Sends what waits now (and the state, if it changed). `gathered`: the end of a burst's window. */
  flush(gathered = false): void {
    if (gathered) this.bursting = this.pending.size > 1;
    const state = this.options.state();
    if (this.pending.size === 0 && this.pendingLost === undefined && state === this.lastState) return;
    const changes = [...this.pending.values()];
    this.pending.clear();
    this.slaveMadePending = false;
    const lost = this.pendingLost;
    this.pendingLost = undefined;
    if (changes.length > 0) {
      this.recent.push(performance.now());
      if (this.recent.length > BURST) this.recent.shift();
    }
    const budget = Math.max(4096, this.options.maxPayload - 1024);
    let at = 0;
    do {
      let bytes = 0;
      let end = at;
      while (end < changes.length) {
        const { change: [dir, name], origin } = changes[end] as { change: SlaveChangeTuple; origin: string | null };
        const cost = Buffer.byteLength(dir) + Buffer.byteLength(name ?? '') + (origin?.length ?? 0) + 16;
        if (bytes + cost > budget && end > at) break;
        bytes += cost;
        end++;
      }
      const batch = changes.slice(at, end);
      const first = at === 0 && lost !== undefined;
      this.seqNow += batch.length + (first ? 1 : 0);
      this.send(batch, state, first ? lost : undefined);
      at = end;
    } while (at < changes.length);
  }

  /** The heartbeat: the current seq and state, so masters can tell a quiet feed from a dead one. */
  beat(): void {
    this.flush();
    this.send([], this.options.state(), undefined);
  }

  private send(batch: { change: SlaveChangeTuple; origin: string | null }[], state: FeedState, lost: LostReason | undefined): void {
    this.lastState = state;
    const origins = batch.some((c) => c.origin !== null) ? batch.map((c) => c.origin) : undefined;
    this.options.publish(encodeChangeMessage({
      boot: this.options.boot, seq: this.seqNow, changes: batch.map((c) => c.change), state,
      ...(lost === undefined ? {} : { lost }), ...(origins === undefined ? {} : { origins }),
    }));
  }

  stop(): void {
    clearInterval(this.heartbeat);
  }
}
