/**
 * The master's end of an agent's change feed (protocol/changes.ts): hands each change to the
 * mount once, in order, and says when changes may have been missed (`onLost`: the mount must
 * forget everything it cached of that slave). Missed means: a gap in the sequence, a new agent
 * boot, a feed that went quiet for more than 3 heartbeats, a bus reconnection, a message that
 * does not decode, or a barrier (`applied`) that timed out. It never waits for ever and never
 * lets a change pass unannounced.
 */
import type { Logger } from 'pino';
import {
  changeSubject, decodeChangeMessage, firstSeqOf,
  type ChangeKind, type ChangeMessage, type FeedState,
} from '../protocol/index.js';
import { AgentClient } from './agent-client.js';
import type { Bus } from './bus.js';

export interface SlaveChange {
  dir: string;
  name: string | null;
  kind: ChangeKind;
}

export interface ChangeFeedOptions {
  /** Silence after which the feed counts as degraded, and as lost when it speaks again. */
  silenceMs?: number;
  /** Deadline of the starting fs.changes request. */
  timeoutMs?: number;
  /**
   * This master's id as its requests carry it (AgentClient.origin): changes the agent made for
   * it are not handed on, since the mount corrected its caches when each request was answered.
   */
  ownOrigin?: string;
}

const SILENCE_MS = 3000;
const CHECK_MS = 500;

interface Barrier {
  seq: number;
  resolve(): void;
  timer: NodeJS.Timeout;
}

export class ChangeFeed {
  private boot: string | undefined;
  private lastSeq = 0;
  private current: FeedState = 'off';
  /** The agent said its state; 'degraded' here may also be ours (silence). */
  private agentState: FeedState = 'off';
  private lastHeard = Date.now();
  private silent = false;
  private readonly changeHandlers: ((changes: SlaveChange[]) => void)[] = [];
  private readonly lostHandlers: ((reason: string) => void)[] = [];
  private readonly stateHandlers: ((state: FeedState) => void)[] = [];
  private readonly barriers = new Set<Barrier>();
  private subscription: { stop(): void } | undefined;
  private readonly checker: NodeJS.Timeout;
  private closed = false;

  private constructor(private readonly log: Logger, private readonly silenceMs: number, private readonly ownOrigin: string | undefined) {
    this.checker = setInterval(() => this.checkSilence(), CHECK_MS);
    this.checker.unref();
  }

  /** Subscribes, then asks the agent where its feed stands (an agent without one: state off). */
  static async open(bus: Bus, agentId: string, log: Logger, options: ChangeFeedOptions = {}): Promise<ChangeFeed> {
    const feed = new ChangeFeed(log.child({ component: 'change-feed', agentId }), options.silenceMs ?? SILENCE_MS, options.ownOrigin);
    // Until the starting position is known, messages wait here (those it covers are dropped).
    let early: ChangeMessage[] | undefined = [];
    feed.subscription = await bus.subscribe(changeSubject(agentId), (data) => {
      let message: ChangeMessage;
      try {
        message = decodeChangeMessage(data);
      } catch (err) {
        feed.log.warn({ err }, 'undecodable change message');
        if (early === undefined) feed.lose('undecodable change message');
        return;
      }
      if (early !== undefined) early.push(message);
      else feed.receive(message);
    });
    bus.onReconnect(() => feed.lose('bus reconnected'));
    const client = new AgentClient(bus, agentId, { timeoutMs: options.timeoutMs ?? 5000, slaveWaitMs: 0, log });
    try {
      const start = await client.call('fs.changes', {});
      feed.boot = client.bootId;
      feed.lastSeq = start.seq;
      feed.setState(start.state);
    } catch (err) {
      // ENOSYS (an agent older than the feed) or no answer: off until the agent's messages say
      // otherwise; the first of those is taken as a loss, since the start was not known.
      feed.log.info({ err }, 'no change feed position from the agent');
    }
    const waiting = early;
    early = undefined;
    for (const message of waiting) feed.receive(message);
    feed.lastHeard = Date.now();
    return feed;
  }

  get state(): FeedState {
    return this.current;
  }

  onChanges(handler: (changes: SlaveChange[]) => void): void {
    this.changeHandlers.push(handler);
  }

  onLost(handler: (reason: string) => void): void {
    this.lostHandlers.push(handler);
  }

  onState(handler: (state: FeedState) => void): void {
    this.stateHandlers.push(handler);
  }

  /** Resolves once every change up to `seq` was handed to onChanges (or onLost fired): a barrier. */
  applied(seq: number, timeoutMs: number): Promise<void> {
    if (seq <= this.lastSeq || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const barrier: Barrier = {
        seq, resolve,
        timer: setTimeout(() => {
          this.barriers.delete(barrier);
          this.lose(`barrier: seq ${seq} not seen within ${timeoutMs} ms (at ${this.lastSeq})`);
          resolve();
        }, timeoutMs),
      };
      this.barriers.add(barrier);
    });
  }

  private receive(message: ChangeMessage): void {
    this.lastHeard = Date.now();
    if (this.silent) {
      this.silent = false;
      this.lose(`the feed was silent for more than ${this.silenceMs} ms`);
    }
    if (message.boot !== this.boot) {
      const known = this.boot !== undefined;
      this.boot = message.boot;
      this.lastSeq = message.seq;
      // A feed first seen here (its start unknown) may already have passed changes by.
      this.lose(known ? 'the agent restarted' : 'the feed\'s start was not known');
    } else if (message.seq <= this.lastSeq) {
      // Older than what was applied (a heartbeat repeats it): nothing new.
    } else {
      if (firstSeqOf(message) > this.lastSeq + 1) this.lose(`gap in the feed: ${firstSeqOf(message)} after ${this.lastSeq}`);
      if (message.lost !== undefined) this.lose(`the agent lost changes (${message.lost})`);
      const { origins } = message;
      const changes: SlaveChange[] = [];
      message.changes.forEach(([dir, name, kind], i) => {
        if (this.ownOrigin === undefined || origins?.[i] !== this.ownOrigin) changes.push({ dir, name, kind });
      });
      if (changes.length > 0) for (const handler of this.changeHandlers) handler(changes);
      this.lastSeq = message.seq;
    }
    this.agentState = message.state;
    this.setState(message.state);
    this.release((b) => b.seq <= this.lastSeq);
  }

  private checkSilence(): void {
    if (this.agentState === 'off' && this.boot === undefined) return; // nothing to hear from
    if (!this.silent && Date.now() - this.lastHeard > this.silenceMs) {
      this.silent = true;
      this.log.warn({ silenceMs: this.silenceMs }, 'the change feed went silent: degraded');
      this.setState('degraded');
    }
  }

  /** Changes may have passed unseen: the mount forgets everything, and every barrier is met. */
  private lose(reason: string): void {
    this.log.info({ reason }, 'changes may have been missed');
    for (const handler of this.lostHandlers) handler(reason);
    this.release(() => true);
  }

  private release(which: (barrier: Barrier) => boolean): void {
    for (const barrier of this.barriers) {
      if (!which(barrier)) continue;
      clearTimeout(barrier.timer);
      this.barriers.delete(barrier);
      barrier.resolve();
    }
  }

  private setState(state: FeedState): void {
    if (state === this.current) return;
    this.current = state;
    this.log.info({ state }, 'change feed state');
    for (const handler of this.stateHandlers) handler(state);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.checker);
    this.subscription?.stop();
    this.release(() => true);
  }
}
