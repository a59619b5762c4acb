/**
 * Reused chunk buffers for written data. A write chunk lives until the agent has applied it and
 * made it durable (retained-writes.ts), so each needs a buffer of its own; a fresh 1 MiB buffer
 * per chunk cost the mount a third more CPU in a sequential write (the garbage collector chasing
 * external memory). Buffers return here when the data is let go; only buffers this pool made
 * are taken back, each once.
 */
import { MESSAGE_HEADROOM, allowHeadInPlace } from '../protocol/index.js';

export class ChunkPool {
  private readonly free: ArrayBuffer[] = [];
  private readonly out = new WeakSet<ArrayBuffer>();

  constructor(readonly size: number, private readonly maxFree: number) {}

  /**
   * `size` bytes, with the codec's headroom in front of them: a write request is then built
   * around the chunk where it lies, not copied into a message of its own (protocol/codec.ts).
   */
  take(): Buffer {
    let memory = this.free.pop();
    if (memory === undefined) {
      memory = new ArrayBuffer(MESSAGE_HEADROOM + this.size);
      allowHeadInPlace(memory);
    }
    this.out.add(memory);
    return Buffer.from(memory, MESSAGE_HEADROOM, this.size);
  }

  /** Takes back the memory under `data` if it is ours and out; anything else is left to the GC. */
  give(data: Buffer): void {
    const memory = data.buffer;
    if (!(memory instanceof ArrayBuffer) || !this.out.has(memory)) return;
    this.out.delete(memory);
    if (this.free.length < this.maxFree) this.free.push(memory);
  }
}
