/**
 * The master's side of a device the agent pushes (dev.stream): its data in order as it arrives,
 * credit returned as it is used (so a slow reader here slows the agent's reading there, within a
 * window), writes published without an answer (dev.input: numbered, written in order by the
 * agent, acknowledged in the stream's events; a refusal is reported at the next write or at
 * `settled`), line changes in order with them. A keystroke and its echo are one message each way.
 *
 *   agent --events--> DeviceStream --data--> reader;  writer --write--> DeviceStream --dev.input--> agent
 *
 * Events lost by NATS (a server failover) are asked for again (dev.resend), as a process's output
 * is (sidecar/remote-process.ts); inputs not acknowledged for a while are sent again (the agent
 * takes each seq once). The stream ends with the device (end of file, EIO when it went away), or
 * when the agent that had it restarted.
 *
 * When the agent offers a device link (protocol/link.ts), the same messages travel on it
 * once it is up: a direct connection, one hop each way instead of two through the NATS server.
 * Inputs and line changes move to it only when nothing sent on the bus is still unanswered, so
 * they stay in order; when it breaks, what it had in flight is sent again or asked for again on
 * the bus, as after a failover. The keepalive stays on the bus: it is what notices the agent.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import {
  SlaveError, decodeDevEvent, linkHost, outputSubject, type Caller, type DevEvent, type FlockLock, type LinkOffer, type OpRequest, type WireTermios,
} from '../protocol/index.js';
import type { AgentClient } from '../transport/agent-client.js';
import { AgentLink, LinkClosedError } from '../transport/agent-link.js';

/** What the agent may push ahead of our credit: a terminal's bursts, and /dev/urandom at speed. */
const WINDOW = 512 * 1024;
/** Written bytes the agent has not acknowledged, past which `write` waits. */
const WRITES_AHEAD = 256 * 1024;
/** Credit goes back on its own once this much is owed; less rides on the next input, or waits CREDIT_MS. */
const CREDIT_BATCH = WINDOW / 8;
const CREDIT_MS = 20;
/** Inputs not acknowledged for this long are sent again (NATS lost them, or their acknowledgement). */
const INPUT_RESEND_MS = 1000;
/**
 * A stream the agent has said nothing on for this long is asked after (dev.credit, answered): the
 * answer is the agent's lease on the stream (it closes streams nobody asks after, agent/dev/), and
 * tells a restarted agent (ESTALE) or one gone past --slave-wait (the stream ends: EIO).
 */
export const STREAM_KEEPALIVE_MS = 5000;
/** A link not made within this long is given up: the stream stays on the bus. */
const LINK_CONNECT_MS = 3000;
/**
 * Inputs on the link unacknowledged this long: the link is taken as dead (a network that drops
 * it without a word: no reset comes, TCP would retry for minutes) and given up for the bus.
 */
const LINK_STALL_MS = 3000;
/** How long events the agent says it sent may still be on their way before they count as lost. */
const LOST_TAIL_MS = 500;

export interface DeviceStreamEvents {
  /** One chunk of the device's data, in order; call `used` once it is taken (returns credit). */
  data(chunk: Buffer, used: () => void): void;
  /** The stream ended: null at end of file, else why (EIO: the device or the agent went away). */
  end(errno: string | null): void;
}

export class DeviceStream {
  private nextSeq = 0;
  private credit = 0;
  private creditTimer: NodeJS.Timeout | undefined;
  private resending = false;
  private ended = false;
  private failure: SlaveError | undefined;
  /** Inputs sent and not acknowledged, in seq order, to send again if they do not come. */
  private readonly unacked: { seq: number; data: Uint8Array }[] = [];
  private unackedBytes = 0;
  private nextInput = 0;
  /** When the inputs last made progress (or the first of them was sent). */
  private lastAckAt = Date.now();
  private lastResendAt = 0;
  /** When the agent last said anything of this stream (an event, or an answer to a keepalive). */
  private lastHeardAt = Date.now();
  private probing = false;
  private readonly resendTimer: NodeJS.Timeout;
  private readonly waiters: (() => void)[] = [];
  private outstanding: Promise<unknown> = Promise.resolve();
  /** The direct connection to the agent, while it is up. */
  private link: AgentLink | undefined;
  /** Inputs and line changes go on the link (from a moment when none sent on the bus was unanswered). */
  private onLink = false;
  /** Line changes, flushes and breaks sent and not answered. */
  private controlsPending = 0;

  private constructor(
    private readonly client: AgentClient,
    readonly path: string,
    readonly fh: number,
    private readonly boot: string,
    /** The terminal's settings on the slave before it was made raw (terminals only). */
    readonly termios: WireTermios | null,
    private readonly events: DeviceStreamEvents,
    private readonly stopSubscription: () => void,
    private readonly log: Logger,
  ) {
    this.resendTimer = setInterval(() => {
      this.resendInputs();
      this.keepAlive();
    }, INPUT_RESEND_MS).unref();
  }

  static async open(
    client: AgentClient, path: string, flags: number, terminal: boolean, caller: Caller | undefined,
    events: DeviceStreamEvents, log: Logger,
  ): Promise<DeviceStream> {
    // Under the agent's own output subjects, which the bus lets only its masters read.
    const subject = outputSubject(client.agentId, randomBytes(12).toString('hex'));
    let stream: DeviceStream | undefined;
    const early: DevEvent[] = []; // events may beat the reply
    const sub = await client.bus.subscribe(subject, (data) => {
      const event = decodeEvent(data, path, log);
      if (!event) return;
      if (stream) stream.receive(event);
      else early.push(event);
    });
    try {
      const { fh, termios, link } = await client.call('dev.stream', { path, flags, output: subject, window: WINDOW, terminal, link: true }, { caller });
      stream = new DeviceStream(client, path, fh, client.bootId ?? '', termios, events, () => sub.stop(), log);
      for (const event of early) stream.receive(event);
      if (link) stream.connectLink(link);
      return stream;
    } catch (err) {
      sub.stop();
      throw err;
    }
  }

  /** Connects the link the agent offered, in the background: the stream works on the bus meanwhile. */
  private connectLink(offer: LinkOffer): void {
    const onEvent = (data: Uint8Array) => {
      const event = decodeEvent(data, this.path, this.log);
      if (event) this.receive(event);
    };
    const host = linkHost(offer.host, this.client.bus.server.url);
    AgentLink.connect({ ...offer, host }, onEvent, this.client.bus.maxPayload + 1024, LINK_CONNECT_MS).then((link) => {
      if (this.ended) {
        link.close();
        return;
      }
      this.link = link;
      link.onClose(() => this.linkLost(link));
      this.log.debug({ path: this.path, host, port: offer.port }, 'device link up');
      this.moveToLink();
    }, (err: unknown) => {
      this.log.info({ err, path: this.path, host, port: offer.port }, 'device link not made: the device stays on the bus');
    });
  }

  /** Inputs and line changes go on the link from now, if nothing sent on the bus waits for an answer. */
  private moveToLink(): void {
    if (!this.onLink && this.link?.isOpen && this.unacked.length === 0 && this.controlsPending === 0) this.onLink = true;
  }

  /** The link broke: what it had in flight either way goes again on the bus. */
  private linkLost(link: AgentLink): void {
    if (this.link !== link) return;
    this.link = undefined;
    this.onLink = false;
    if (this.ended) return;
    this.log.info({ path: this.path }, 'device link lost: the device goes on over the bus');
    // First the agent drops its end (it may not know the link is dead), so that what the inputs
    // below make the device answer comes on the bus; then the inputs again (it takes each seq once).
    this.askAgain('device link lost', true);
    for (const input of this.unacked) this.sendInput(input, 0);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Whether a write now would wait for acknowledgements. */
  get full(): boolean {
    return this.unackedBytes >= WRITES_AHEAD;
  }

  private receive(event: DevEvent): void {
    if (this.ended) return;
    this.lastHeardAt = Date.now();
    if ('ack' in event) {
      this.acknowledged(event.ack.acked, event.ack.errno);
      return;
    }
    if (event.seq < this.nextSeq) return;
    if (event.seq > this.nextSeq) {
      this.askAgain(`event ${event.seq} arrived, ${this.nextSeq} expected`);
      return;
    }
    this.nextSeq++;
    if ('end' in event) {
      // End of file ends reading only: /dev/null still takes writes, acknowledged as before.
      if (event.end.errno === null) this.events.end(null);
      else this.finish(event.end.errno);
      return;
    }
    if (event.acked !== undefined) this.acknowledged(event.acked, null);
    const chunk = Buffer.from(event.data.buffer, event.data.byteOffset, event.data.byteLength);
    this.events.data(chunk, () => this.returnCredit(chunk.length));
  }

  /** `unlink`: the link is given up, and the agent must drop its end too (it may not know the link is dead). */
  private askAgain(why: string, unlink = false): void {
    if (this.resending && !unlink) return;
    this.resending = true;
    this.log.info({ path: this.path, from: this.nextSeq, why }, 'device data missed: asking the agent to send it again');
    this.client.call('dev.resend', { fh: this.fh, from: this.nextSeq, ...(unlink ? { unlink } : {}) }, { handleBoot: this.boot })
      .catch((err: unknown) => this.log.debug({ err, path: this.path }, 'dev.resend failed'))
      .finally(() => { this.resending = false; });
  }

  /** Credit rides on the next input; past CREDIT_BATCH, or after CREDIT_MS, it goes on its own. */
  private returnCredit(bytes: number): void {
    this.credit += bytes;
    if (this.ended) return;
    if (this.credit >= CREDIT_BATCH) {
      this.sendCredit();
      return;
    }
    this.creditTimer ??= setTimeout(() => this.sendCredit(), CREDIT_MS);
  }

  private sendCredit(): void {
    clearTimeout(this.creditTimer);
    this.creditTimer = undefined;
    const bytes = this.takeCredit();
    if (bytes > 0 && !this.ended) this.post('dev.credit', { fh: this.fh, bytes, received: this.nextSeq });
  }

  private takeCredit(): number {
    const bytes = this.credit;
    this.credit = 0;
    return bytes;
  }

  /**
   * Sends `data` to the device without waiting for the agent to have written it; waits only
   * while too much is unacknowledged. A write the agent refused makes the next one throw.
   */
  async write(data: Uint8Array): Promise<void> {
    this.throwFailure();
    while (this.unackedBytes >= WRITES_AHEAD && !this.failure && !this.ended) await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.throwFailure();
    if (this.ended) throw new SlaveError('EIO', `${this.path}: the device is gone`);
    this.moveToLink();
    const input = { seq: this.nextInput++, data };
    this.unacked.push(input);
    this.unackedBytes += data.length;
    if (this.unacked.length === 1) this.lastAckAt = Date.now();
    this.sendInput(input, this.takeCredit());
  }

  private sendInput(input: { seq: number; data: Uint8Array }, credit: number): void {
    this.post('dev.input', { fh: this.fh, seq: input.seq, data: input.data, credit, received: this.nextSeq });
  }

  /** Sends a request nobody waits for: on the link once inputs go there (credit may go there as soon as it is up), else on the bus. */
  private post<K extends 'dev.input' | 'dev.credit'>(op: K, args: OpRequest<K>): void {
    const link = this.link;
    if (link && (this.onLink || op === 'dev.credit') && link.send(op, this.client.encode(op, args, { handleBoot: this.boot }))) return;
    this.client.send(op, args, { handleBoot: this.boot });
  }

  private acknowledged(acked: number, errno: string | null): void {
    if (errno !== null) this.failure ??= new SlaveError(errno, `${this.path}: the device refused a write (${errno})`);
    let drop = 0;
    while (drop < this.unacked.length && (this.unacked[drop] as { seq: number }).seq < acked) {
      this.unackedBytes -= (this.unacked[drop] as { data: Uint8Array }).data.length;
      drop++;
    }
    if (drop > 0) {
      this.unacked.splice(0, drop);
      this.lastAckAt = Date.now();
    }
    this.moveToLink();
    for (const wake of this.waiters.splice(0)) wake();
  }

  /**
   * Inputs long unacknowledged go again; the first as a request, whose answer also tells whether
   * the agent is still the one that has the device (a restarted one answers ESTALE, and the
   * client's onRestart takes it from there).
   */
  private resendInputs(): void {
    const now = Date.now();
    if (this.ended || this.unacked.length === 0 || now - this.lastAckAt < INPUT_RESEND_MS || now - this.lastResendAt < INPUT_RESEND_MS) return;
    if (this.onLink && this.link && now - this.lastAckAt > LINK_STALL_MS) {
      this.log.warn({ path: this.path, silentMs: now - this.lastAckAt }, 'device link silent with inputs unacknowledged: going back to the bus');
      this.link.close(); // linkLost sends them again on the bus
      return;
    }
    if (now - this.lastAckAt > Math.max(this.client.slaveWaitMs, INPUT_RESEND_MS * 2)) {
      // Nothing hangs past --slave-wait: the writer waiting on a full terminal gets a hang-up.
      this.log.warn({ path: this.path, waitedMs: Date.now() - this.lastAckAt }, 'device input not taken within the slave wait: the device went away');
      this.finish('EIO');
      return;
    }
    this.log.info({ path: this.path, inputs: this.unacked.length }, 'device input not acknowledged: sending it again');
    this.lastResendAt = now;
    const [first, ...rest] = this.unacked as [{ seq: number; data: Uint8Array }, ...{ seq: number; data: Uint8Array }[]];
    this.client.call('dev.input', { fh: this.fh, seq: first.seq, data: first.data, credit: 0, received: this.nextSeq }, { handleBoot: this.boot, slaveWaitMs: 0 })
      .catch((err: unknown) => this.log.debug({ err, path: this.path }, 'device input probe failed'));
    for (const input of rest) this.sendInput(input, 0);
  }

  private keepAlive(): void {
    const now = Date.now();
    if (this.ended || this.probing || now - this.lastHeardAt < STREAM_KEEPALIVE_MS) return;
    if (now - this.lastHeardAt > Math.max(this.client.slaveWaitMs, STREAM_KEEPALIVE_MS * 2)) {
      this.log.warn({ path: this.path, silentMs: now - this.lastHeardAt }, 'the agent said nothing of the device within the slave wait: it went away');
      this.finish('EIO');
      return;
    }
    this.probing = true;
    this.client.call('dev.credit', { fh: this.fh, bytes: this.takeCredit(), received: this.nextSeq }, { handleBoot: this.boot, slaveWaitMs: 0, timeoutMs: STREAM_KEEPALIVE_MS })
      .then(({ sent }) => {
        this.lastHeardAt = Date.now();
        if (sent !== undefined && sent > this.nextSeq) this.lostAtTail(sent);
      })
      .catch((err: unknown) => {
        // ESTALE: a restarted agent (the client's onRestart opens the device again, or not).
        if (err instanceof SlaveError && err.errnoName !== 'ESTALE') this.finish(err.errnoName);
        else this.log.debug({ err, path: this.path }, 'device keepalive unanswered');
      })
      .finally(() => { this.probing = false; });
  }

  /**
   * After a silence the agent says it sent events up to `sent`, and some never came: the last
   * ones were lost on the way (nothing after them showed a gap). Unless they arrive in a moment
   * (one may be on its way), a link is given up, as it went silent, or else they are asked for.
   */
  private lostAtTail(sent: number): void {
    setTimeout(() => {
      if (this.ended || this.nextSeq >= sent) return;
      if (this.link) {
        this.log.warn({ path: this.path, from: this.nextSeq, sent }, 'device link silent with events sent on it: going back to the bus');
        this.link.close(); // linkLost asks for them again on the bus
      } else {
        this.askAgain(`events up to ${sent} sent, ${this.nextSeq} received`);
      }
    }, LOST_TAIL_MS).unref();
  }

  /** A line change, a flush or a break, in order with the writes. */
  /** flock(2) of the device on the slave, once, by this stream's handle (mount/flock-wait.ts asks again). */
  async flock(lock: FlockLock): Promise<void> {
    await this.client.call('dev.flock', { fh: this.fh, lock }, { handleBoot: this.boot });
  }

  control<K extends 'dev.termios' | 'dev.flush' | 'dev.break'>(op: K, args: Omit<OpRequest<K>, 'fh'>): void {
    const request = { ...args, fh: this.fh } as OpRequest<K>;
    this.moveToLink();
    const link = this.onLink ? this.link : undefined;
    // On the link with the inputs, in order with them; asked again on the bus if the link goes first.
    const answered = link
      ? link.call(op, this.client.encode(op, request, { handleBoot: this.boot })).then(
        (raw) => this.client.answer(op, raw),
        (err: unknown) => (err instanceof LinkClosedError ? this.client.call(op, request, { handleBoot: this.boot }) : Promise.reject(err)))
      : this.client.call(op, request, { handleBoot: this.boot });
    this.controlsPending++;
    const settled = answered.then(() => undefined, (err: unknown) => {
      this.failure ??= err instanceof SlaveError ? err : new SlaveError('EIO', `${this.path}: ${(err as Error).message}`);
      this.log.debug({ err, path: this.path, op }, 'device request refused');
    }).finally(() => {
      this.controlsPending--;
      this.moveToLink();
    });
    this.outstanding = Promise.all([this.outstanding, settled]);
  }

  /** Resolves once every input sent so far is acknowledged and every control answered; throws the first refusal. */
  async settled(): Promise<void> {
    while (this.unacked.length > 0 && !this.failure && !this.ended) await new Promise<void>((resolve) => this.waiters.push(resolve));
    await this.outstanding;
    this.throwFailure();
  }



  private throwFailure(): void {
    if (this.failure) throw this.failure;
  }

  /**
   * The agent that had the device is gone (it restarted): the stream stops, nothing to tell it.
   * Returns the inputs it had not acknowledged, for the device opened again: sent again there,
   * at least once (a keystroke sent just before the agent died may come twice; none is lost).
   */
  abandon(): Uint8Array[] {
    if (!this.ended) this.stop();
    return this.unacked.splice(0).map((input) => input.data);
  }

  private finish(errno: string | null): void {
    if (this.ended) return;
    this.stop();
    this.events.end(errno);
  }

  private stop(): void {
    this.ended = true;
    clearInterval(this.resendTimer);
    clearTimeout(this.creditTimer);
    this.stopSubscription();
    const link = this.link;
    this.link = undefined;
    link?.close();
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Closes the device on the agent, after the writes sent before (bounded: the agent may be gone). */
  async close(): Promise<void> {
    const wasEnded = this.ended;
    if (!wasEnded) {
      const bound = new Promise<void>((resolve) => setTimeout(resolve, INPUT_RESEND_MS * 2).unref());
      await Promise.race([this.settled().catch(() => undefined), bound]);
    }
    this.stop();
    await this.outstanding;
    if (!wasEnded || this.client.bootId === this.boot) {
      await this.client.call('dev.release', { fh: this.fh }, { handleBoot: this.boot, slaveWaitMs: 0 })
        .catch((err: unknown) => this.log.debug({ err, path: this.path }, 'device release failed'));
    }
  }

}

/** A device event from the bus or a link; undefined (logged) when it does not decode. */
function decodeEvent(data: Uint8Array, path: string, log: Logger): DevEvent | undefined {
  try {
    return decodeDevEvent(data);
  } catch (err) {
    log.warn({ err, path }, 'undecodable device event dropped');
    return undefined;
  }
}
