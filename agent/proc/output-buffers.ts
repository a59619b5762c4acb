/**
 * Memory for process output events, used again from event to event. Output is gathered into a
 * buffer with the codec's headroom in front, and the event is encoded around it where it lies
 * (protocol/codec.ts). A fresh buffer per event, kept until the master credits it, lived long
 * enough to reach V8's old space: a full garbage collection every 16 MiB of output, a quarter of
 * the agent's CPU while a command streams. A buffer comes back once its master has the event
 * (credited, or received): the agent's connection has written it by then.
 *
 *   process --pipe--> chunks --copied into--> buffer --encoded in place--> event --credit--> back here
 */
import { allocWithHeadroom } from '../../protocol/index.js';

/** Free buffers dropped after this long without output, so an idle agent holds none. */
const IDLE_MS = 5000;

export class OutputBuffers {
  private readonly free: Buffer[] = [];
  /** Buffers out, by their memory (the event built around one shares it). */
  private readonly out = new WeakMap<ArrayBufferLike, Buffer>();
  private idleTimer: NodeJS.Timeout | undefined;

  /** `size`: each buffer's bytes (the largest event's data); at most `maxFree` are kept free. */
  constructor(readonly size: number, private readonly maxFree: number) {}

  /** Whether an event of `bytes` should keep its buffer until received, rather than be copied. */
  worthPinning(bytes: number): boolean {
    return bytes >= this.size / 4;
  }

  /** How many buffers a process may pin: as many as its window of output fills, and one more. */
  pinsFor(window: number): number {
    return Math.ceil(window / this.size) + 1;
  }

  take(): Buffer {
    this.touch();
    const buffer = this.free.pop() ?? allocWithHeadroom(this.size);
    this.out.set(buffer.buffer, buffer);
    return buffer;
  }

  /** The memory under `event` is free again, if it is one of ours; anything else is left to the GC. */
  give(event: Uint8Array): void {
    const buffer = this.out.get(event.buffer);
    if (buffer === undefined) return;
    this.out.delete(event.buffer);
    if (this.free.length < this.maxFree) this.free.push(buffer);
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
