/**
 * The change feed's wire side (protocol/changes.ts): numbers changes, gathers them into one
 * message (deduplicated, split to fit max_payload), marks losses, and beats every second. What is
 * watched and why lives in change-feed.ts.
 *
 * A change the slave's own processes made goes out at the end of the turn it was read in: a
 * master sees it at once, however often. Changes that masters made through the agent are
 * gathered for GATHER_MS into one message: the master that made them skips them as its own, and
 * other masters see them GATHER_MS later, well within the coherence bound. One message per
 * operation was three bus messages per file of an untar (issue 24); gathering only bursts (four
 * messages within GATHER_MS) still sent one per file when files came a few ms apart, as an
 * untar's do. A barrier (change-feed.ts sync) flushes at once.
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

/**
 * How long changes masters made are gathered into one message. A master's busy stream of changes
 * sends one message per GATHER_MS: with 10 ms, an untar of 2,413 entries over a 2 ms round trip
 * sent 1,635 of its 7,517 messages this way (0.68 per entry), with 25 ms 739 (0.31). Another
 * master sees such a change at most 25 ms late, a quarter of the coherence bound (100 ms); the
 * slave's own changes are not gathered.
 */
const GATHER_MS = 25;

export class ChangePublisher {
  private seqNow = 0;
  /** What waits, once per change, with the master that made it (null: the slave, or mixed). */
  private readonly pending = new Map<string, { change: SlaveChangeTuple; origin: string | null }>();
  private pendingLost: LostReason | undefined;
  private flushScheduled = false;
  private lastState: FeedState | undefined;
  private losses = 0;
  private readonly heartbeat: NodeJS.Timeout;
  /** The window gathering masters' changes, while one is open. */
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

  /** Sends what gathered once this turn's records are all in; masters' changes alone, GATHER_MS later. */
  schedule(): void {
    const slaveMade = this.slaveMadePending || this.pendingLost !== undefined;
    if (this.flushScheduled) {
      // A window is open, and the slave changed something itself: that goes now, with the rest.
      if (slaveMade && this.gatherTimer !== undefined) {
        clearTimeout(this.gatherTimer);
        this.gatherTimer = undefined;
        setImmediate(() => this.scheduledFlush());
      }
      return;
    }
    this.flushScheduled = true;
    if (!slaveMade && this.pending.size > 0) this.gatherTimer = setTimeout(() => this.scheduledFlush(), GATHER_MS);
    else setImmediate(() => this.scheduledFlush());
  }

  private scheduledFlush(): void {
    this.flushScheduled = false;
    this.gatherTimer = undefined;
    this.flush();
  }

  /** Sends what waits now (and the state, if it changed). */
  flush(): void {
    const state = this.options.state();
    if (this.pending.size === 0 && this.pendingLost === undefined && state === this.lastState) return;
    const changes = [...this.pending.values()];
    this.pending.clear();
    this.slaveMadePending = false;
    const lost = this.pendingLost;
    this.pendingLost = undefined;
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
