/**
 * Requests that nobody waits for yet travel together: the mount sends a create, the file's
 * writes, its attribute changes and its release without waiting for their replies (the agent
 * applies one connection's requests in order), so they need not go one message each. Such a
 * request is held ("corked") until a request somebody waits for is sent, `uncork()` is called,
 * or no request has joined for CORK_MS (and at most CORK_MAX_MS after the first; while held ones
 * sent before are unanswered, both count from their answer), and then all
 * held go as one `agent.batch` message with one reply: the NATS hop, the envelope, the
 * validation and the metrics are paid once per batch on both ends. Unlike Nagle's algorithm, it
 * is held even when nothing is on its way, and a reply does not send it either: nobody waits for
 * it, and a program's next close or stat (which waits, and so uncorks) mostly comes before it
 * pauses. An untar then sends one message per file: its create, data and times, with the
 * previous file's owner, mode and release, sent at the end of the turn in which tar set the
 * times (`soon()`, from write-behind.ts): the agent applies them while tar sets the rest, and
 * the close that waits for the data mostly finds it answered. (With one fixed CORK_MS
 * from the first request, a file whose nine kernel requests took longer than that on a busy
 * machine went as two or three messages: an untar sent 1.6 batches per file, not one.)
 *
 * Order is kept: a request that is not held goes out with the held ones, after them, in the same
 * message (or right after them, when it is too large to join). What does not fit one batch (by
 * count or bytes) goes as the next message, in order.
 */
import { MAX_BATCH_REQUESTS, decodeReply, encodeRequest, type OpName } from '../protocol/index.js';
import { AgentUnreachableError } from './errors.js';

/** Sends one request message and resolves with its raw reply (the bus's, or a session link's: agent-client.ts). */
export type Carry = (op: OpName, message: Uint8Array, timeoutMs: number) => Promise<Uint8Array>;

/** How long held requests wait for another to join them: a pause of the program's this long sends them. */
export const CORK_MS = 2;
/** How long a request may be held, at most, however many keep joining it (while none sent before is unanswered). */
export const CORK_MAX_MS = 10;
/** Requests larger than this travel alone (a file's data chunk): batching saves nothing there. */
const MAX_JOINED_BYTES = 64 * 1024;

interface Held {
  op: OpName;
  message: Uint8Array;
  timeoutMs: number;
  resolve(raw: Uint8Array): void;
  reject(err: unknown): void;
}

export class RequestBatch {
  private held: Held[] = [];
  private heldBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  /** When the first and the last of the held requests joined (performance.now()). */
  private firstHeldAt = 0;
  private lastHeldAt = 0;
  /** Set by `uncork()` until the event loop's next turn: requests joining meanwhile go then. */
  private waited: NodeJS.Immediate | undefined;
  private seq = 0;
  /** Messages of held requests sent and not answered yet. */
  private onTheirWay = 0;

  constructor(
    private readonly carry: Carry,
    /** The id batches are numbered under (the client's). */
    private readonly clientId: string,
    /** The most bytes of requests one batch carries (a share of the bus's max_payload). */
    private readonly maxBytes: number,
  ) {}

  /**
   * Sends `message` (an encoded request of `op`) and resolves with its raw reply, as
   * `bus.request` does. `hold`: it may be held for others to join it (CORK_MS, CORK_MAX_MS).
   */
  request(op: OpName, message: Uint8Array, timeoutMs: number, hold: boolean): Promise<Uint8Array> {
    if (message.length > MAX_JOINED_BYTES) {
      this.sendHeld();
      return this.carry(op, message, timeoutMs);
    }
    // Nothing held and somebody waits: no reason to hold it.
    if (this.held.length === 0 && !hold) return this.carry(op, message, timeoutMs);
    if (this.held.length >= MAX_BATCH_REQUESTS || this.heldBytes + message.length > this.maxBytes) this.sendHeld();
    const reply = new Promise<Uint8Array>((resolve, reject) => {
      this.held.push({ op, message, timeoutMs, resolve, reject });
    });
    this.heldBytes += message.length;
    if (!hold) {
      this.sendHeld();
      return reply;
    }
    // One timer per batch, moved on when it fires, not re-armed per request: cheaper per request.
    this.lastHeldAt = performance.now();
    if (this.timer === undefined) {
      this.firstHeldAt = this.lastHeldAt;
      this.timer = setTimeout(this.corked, CORK_MS);
    }
    return reply;
  }

  /**
   * The cork's timer: sends what is held once it has been quiet CORK_MS, or held CORK_MAX_MS.
   * While held requests sent before are on their way, neither clock runs: the program mostly
   * waits for them (a close for its file's data, sent ahead by `soon()`), and what is held (that
   * file's owner and mode) goes with the program's next message; both clocks start at the answer,
   * which arms the timer again (sendHeld). Sent at the quiet, they went alone: over a link with a
   * 2 ms round trip an untar sent 4.3 messages per entry, not 2.6. Sent at CORK_MAX_MS, over a
   * 10 ms round trip (D = 5 ms) 1,889 of an untar's 4,347 messages were a file's owner and mode
   * alone.
   */
  private readonly corked = (): void => {
    if (this.onTheirWay > 0) {
      this.timer = undefined;
      return;
    }
    const now = performance.now();
    const wait = Math.min(CORK_MS - (now - this.lastHeldAt), CORK_MAX_MS - (now - this.firstHeldAt));
    if (wait > 0) this.timer = setTimeout(this.corked, wait);
    else this.sendHeld();
  };

  /**
   * Somebody waits for what was sent: sends what is held now, and what joins before the event
   * loop's next turn then. The request waited for may still be on its way here through a few
   * awaits (a write's send goes through its handle's checks): it must not wait out CORK_MS.
   */
  uncork(): void {
    this.sendHeld();
    this.soon();
  }

  /**
   * Sends what is held, with what joins it meanwhile, at the end of this turn of the event loop:
   * nobody waits yet, but what was held is worth starting (write-behind.ts, pipeline()).
   */
  soon(): void {
    this.waited ??= setImmediate(() => {
      this.waited = undefined;
      this.sendHeld();
    });
  }

  /** Sends what is held now, as one message. */
  private sendHeld(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.held;
    if (batch.length === 0) return;
    this.held = [];
    this.heldBytes = 0;
    this.onTheirWay++;
    const answered = (): void => {
      this.onTheirWay--;
      // What was held meanwhile waited with the program, which mostly waited for this answer (a
      // close for its file's data): the program's pause, and the hold's age, start now. Counted
      // from when they joined, the owner and mode held behind a file's data went alone at the
      // first timer after the answer: over a link with a 2 ms round trip, 1,055 messages of
      // fchown+fchmod per untar of 2,413 entries.
      if (this.onTheirWay > 0 || this.held.length === 0) return;
      this.firstHeldAt = this.lastHeldAt = performance.now();
      this.timer ??= setTimeout(this.corked, CORK_MS);
    };
    if (batch.length === 1) {
      const [only] = batch as [Held];
      const reply = this.carry(only.op, only.message, only.timeoutMs);
      reply.then(answered, answered);
      reply.then(only.resolve, only.reject);
      return;
    }
    const id = `${this.clientId}:batch-${++this.seq}`;
    const message = encodeRequest('agent.batch', id, { requests: batch.map((h): [string, Uint8Array] => [h.op, h.message]) });
    const timeoutMs = Math.max(...batch.map((h) => h.timeoutMs));
    const sent = this.carry('agent.batch', message, timeoutMs);
    sent.then(answered, answered);
    sent.then((raw) => {
      const reply = decodeReply('agent.batch', raw);
      if (!reply.ok) throw reply.error;
      const { replies } = reply.result;
      batch.forEach((held, i) => {
        const one = replies[i];
        if (one) held.resolve(one);
        else held.reject(new AgentUnreachableError('timeout', `the agent's batch reply has no answer for request ${i}`));
      });
    }).catch((err: unknown) => {
      // Each is tried again on its own by its caller, with its own id (agent-client.ts).
      for (const held of batch) held.reject(err);
    });
  }
}
