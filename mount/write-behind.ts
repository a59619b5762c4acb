/**
 * Write coalescing for one open file. The kernel hands us 128 KiB writes; we gather contiguous
 * ones into chunks as large as a bus message allows and send them without waiting, several in
 * flight, so a sequential writer streams at the bus's speed. Memory is bounded by
 * `maxInFlight` chunks: past that the writer waits. The agent applies writes in the order they
 * arrive, so overlapping writes in flight land as they were written, and an operation sent after
 * `send()` (a utimens, a read) sees the data without waiting for the write's reply.
 *
 * A failed send is reported on the next write, flush or fsync of the file, as NFS reports
 * asynchronous write errors at close.
 */
import { SlaveError } from '../protocol/index.js';

export type SendWrite = (offset: number, data: Buffer) => Promise<void>;

export class WriteBehind {
  private buffer: Buffer | null = null;
  private bufferOffset = 0;
  private bufferLength = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown = null;

  constructor(
    private readonly sendWrite: SendWrite,
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
      await Promise.allSettled([...this.inFlight]);
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

  /** Sends what is buffered now (waiting only for room in flight); does not wait for replies. */
  async send(): Promise<void> {
    await this.dispatch();
  }

  private async dispatch(): Promise<void> {
    if (this.buffer === null || this.bufferLength === 0) return;
    const data = this.buffer.subarray(0, this.bufferLength);
    const start = this.bufferOffset;
    this.buffer = null;
    this.bufferLength = 0;
    while (this.inFlight.size >= this.maxInFlight) {
      await Promise.race([...this.inFlight]);
    }
    const done: Promise<void> = this.sendWrite(start, data).then(
      () => { this.inFlight.delete(done); },
      (err: unknown) => {
        this.inFlight.delete(done);
        this.failure ??= err;
      },
    );
    this.inFlight.add(done);
  }
}
