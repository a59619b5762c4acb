/**
 * Write coalescing for one open file. The kernel hands us 128 KiB writes; we gather contiguous
 * ones into chunks as large as a bus message allows and send them without waiting, several in
 * flight, so a sequential writer streams at the bus's speed. Memory is bounded by
 * `maxInFlight` chunks: past that the writer waits. Overlapping ranges are never in flight at the
 * same time, so the slave applies them in the order they were written.
 *
 * A failed send is reported on the next write, flush or fsync of the file, as NFS reports
 * asynchronous write errors at close.
 */
import { SlaveError } from '../protocol/index.js';

export type SendWrite = (offset: number, data: Buffer) => Promise<void>;

interface InFlight {
  start: number;
  end: number;
  done: Promise<void>;
}

export class WriteBehind {
  private buffer: Buffer | null = null;
  private bufferOffset = 0;
  private bufferLength = 0;
  private readonly inFlight = new Set<InFlight>();
  private failure: unknown = null;

  constructor(
    private readonly send: SendWrite,
    private readonly chunkSize: number,
    private readonly maxInFlight: number,
  ) {}

  /** True while data is buffered or on its way. */
  get dirty(): boolean {
    return this.bufferLength > 0 || this.inFlight.size > 0;
  }

  /** Takes a copy of `data`; resolves once the copy is buffered (or sent, for backpressure). */
  async write(offset: number, data: Buffer, length: number): Promise<void> {
    this.raisePending();
    const contiguous = this.buffer !== null && offset === this.bufferOffset + this.bufferLength
      && this.bufferLength + length <= this.chunkSize;
    if (!contiguous) {
      await this.dispatch();
      this.buffer = Buffer.allocUnsafe(Math.max(this.chunkSize, length));
      this.bufferOffset = offset;
      this.bufferLength = 0;
    }
    data.copy(this.buffer as Buffer, this.bufferLength, 0, length);
    this.bufferLength += length;
    if (this.bufferLength >= this.chunkSize) await this.dispatch();
  }

  /** Sends what is buffered and waits for every send; raises the first failure. */
  async flush(): Promise<void> {
    await this.settle();
    this.raisePending();
  }

  /**
   * Sends what is buffered and waits for every send, keeping a failure for the file's next
   * write, flush or fsync: for readers of the same file, which must see the data first.
   */
  async settle(): Promise<void> {
    await this.dispatch();
    while (this.inFlight.size > 0) {
      await Promise.allSettled([...this.inFlight].map((f) => f.done));
    }
  }

  /** Drops buffered data without sending it (the file was truncated or released after an error). */
  discard(): void {
    this.buffer = null;
    this.bufferLength = 0;
  }

  private raisePending(): void {
    if (this.failure === null) return;
    const failure = this.failure;
    this.failure = null;
    throw failure instanceof Error ? failure : new SlaveError('EIO', String(failure));
  }

  private async dispatch(): Promise<void> {
    if (this.buffer === null || this.bufferLength === 0) return;
    const data = this.buffer.subarray(0, this.bufferLength);
    const start = this.bufferOffset;
    const end = start + data.length;
    this.buffer = null;
    this.bufferLength = 0;
    // Wait for room, and for any earlier send that overlaps this range.
    for (;;) {
      const blockers = [...this.inFlight].filter((f) => f.start < end && start < f.end);
      if (blockers.length === 0 && this.inFlight.size < this.maxInFlight) break;
      await Promise.race((blockers.length > 0 ? blockers : [...this.inFlight]).map((f) => f.done));
    }
    const entry: InFlight = { start, end, done: Promise.resolve() };
    entry.done = this.send(start, data).then(
      () => { this.inFlight.delete(entry); },
      (err: unknown) => {
        this.inFlight.delete(entry);
        this.failure ??= err;
      },
    );
    this.inFlight.add(entry);
  }
}
