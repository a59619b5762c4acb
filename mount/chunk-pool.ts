/**
 * Reused chunk buffers for written data. A write chunk lives until the agent has applied it and
 * made it durable (retained-writes.ts), so each needs a buffer of its own; a fresh 1 MiB buffer
 * per chunk cost the mount a third more CPU in a sequential write (the garbage collector chasing
 * external memory). Buffers return here when the data is let go; only buffers this pool made
 * are taken back, each once.
 */
import { allocWithHeadroom } from '../protocol/index.js';

export class ChunkPool {
  private readonly free: Buffer[] = [];
  /** The chunks out, by their memory (what a subarray of one still shares). */
  private readonly out = new WeakMap<ArrayBufferLike, Buffer>();

  constructor(readonly size: number, private readonly maxFree: number) {}

  /**
   * `size` bytes, with the codec's headroom in front of them: a write request is then built
   * around the chunk where it lies, not copied into a message of its own (protocol/codec.ts).
   */
  take(): Buffer {
    const chunk = this.free.pop() ?? allocWithHeadroom(this.size);
    this.out.set(chunk.buffer, chunk);
    return chunk;
  }

  /** Takes back the memory under `data` if it is ours and out; anything else is left to the GC. */
  give(data: Buffer): void {
    const chunk = this.out.get(data.buffer);
    if (chunk === undefined) return;
    this.out.delete(data.buffer);
    if (this.free.length < this.maxFree) this.free.push(chunk);
  }
}
