/**
 * Buffers for the data of `fs.read` replies, used again from read to read. A fresh 1 MiB buffer
 * per read made V8 run a full garbage collection every 64 MiB read (its external memory limit),
 * a third of the agent's CPU in a sequential read. A reply is built around its buffer
 * (protocol/codec.ts, headroom) and handed to the bus, which writes it out later: a buffer is
 * taken back only once the NATS server has answered a PING sent after its reply (`flushed`),
 * so the socket has written every byte of it by then.
 *
 *   take() --read(2) into it--> reply sent (`sent`) --a flush after it--> free again
 */
import { allocWithHeadroom } from '../../protocol/index.js';

/** Reads smaller than this get a buffer of their own: pooling them would cost a flush per few KiB. */
export const POOLED_MIN = 64 * 1024;
/** Free buffers dropped after this long without a read, so an idle agent holds none. */
const IDLE_MS = 5000;

interface Lent {
  buffer: Buffer;
  /** The flush round its reply left before, once sent. */
  sentBefore?: number;
}

export class ReadBuffers {
  private readonly free: Buffer[] = [];
  /** Buffers out, by their memory: the reply built around one shares it. */
  private readonly lent = new Map<ArrayBufferLike, Lent>();
  /** Flush rounds started; a buffer sent before round N is free once round N is answered. */
  private rounds = 0;
  private flushing = false;
  private idleTimer: NodeJS.Timeout | undefined;

  /**
   * `size`: every pooled buffer's (the largest read a reply holds); `max`: how many the pool
   * keeps at most, free and out together (more reads at once get buffers of their own).
   * `flushed` resolves once everything published before the call has reached the server.
   */
  constructor(readonly size: number, private readonly max: number, private readonly flushed: () => Promise<void>) {}

  /** Room for `length` bytes, with the codec's headroom in front. */
  take(length: number): Buffer {
    if (length < POOLED_MIN || length > this.size) return allocWithHeadroom(length);
    this.touch();
    let buffer = this.free.pop();
    if (buffer === undefined) {
      if (this.lent.size >= this.max) return allocWithHeadroom(length);
      buffer = allocWithHeadroom(this.size);
    }
    this.lent.set(buffer.buffer, { buffer });
    return buffer.subarray(0, length);
  }

  /**
   * A reply left for the bus: if it was built around one of our buffers, that buffer is free
   * after the next flush. Replies of other memory are none of ours.
   */
  sent(reply: Uint8Array): void {
    const lent = this.lent.get(reply.buffer);
    if (lent === undefined || lent.sentBefore !== undefined) return;
    lent.sentBefore = this.rounds + 1;
    if (!this.flushing) this.flush();
  }

  /** A buffer whose read failed never left: free at once. */
  giveBack(data: Uint8Array): void {
    const lent = this.lent.get(data.buffer);
    if (lent === undefined || lent.sentBefore !== undefined) return;
    this.lent.delete(data.buffer);
    this.free.push(lent.buffer);
  }

  private flush(): void {
    this.flushing = true;
    const round = ++this.rounds;
    this.flushed().then(() => {
      for (const [memory, lent] of this.lent) {
        if (lent.sentBefore === undefined || lent.sentBefore > round) continue;
        this.lent.delete(memory);
        this.free.push(lent.buffer);
      }
    }, () => {
      // The connection went: what was sent is nats.js's to send again or drop. Those buffers
      // are let go to the garbage collector, never used again.
      for (const [memory, lent] of this.lent) if (lent.sentBefore !== undefined && lent.sentBefore <= round) this.lent.delete(memory);
    }).finally(() => {
      this.flushing = false;
      // Sent while this round was on its way: they wait for the next one.
      for (const lent of this.lent.values()) {
        if (lent.sentBefore !== undefined && lent.sentBefore > round) {
          this.flush();
          return;
        }
      }
    });
  }

  private touch(): void {
    if (this.idleTimer !== undefined) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      this.free.length = 0;
    }, IDLE_MS);
    this.idleTimer.unref();
  }
}
