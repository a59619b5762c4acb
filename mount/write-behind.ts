/**
 * Write coalescing for one open file. The kernel hands us writes of up to one chunk (max_write
 * is what a bus message holds, at most 1 MiB); we gather contiguous ones into chunks as large as
 * a bus message allows and send them without waiting, several in
 * flight, so a sequential writer streams at the bus's speed. Memory is bounded by
 * `maxInFlight` chunks: past that the writer waits. The agent applies writes in the order they
 * arrive, so overlapping writes in flight land as they were written, and an operation sent after
 * `send()` (a utimens, a read) sees the data without waiting for the write's reply.
 *
 * A failed send is reported on the next write, flush or fsync of the file, as NFS reports
 * asynchronous write errors at close. Other requests on the file can join the pipeline
 * (`pipeline()`): sent after the data, not waited for, their failures reported the same way
 * while the file is open. `flush` (close) waits for the file's data only, as NFS and sshfs do:
 * a pipelined attribute change still on its way is the barrier's (fsync, a bridged command).
 */
import { SlaveError } from '../protocol/index.js';

/**
 * Sends one coalesced write. `data` is the sender's from then on: it may keep it, to send it
 * again after an agent restart (remote-fs.ts); a full-size chunk's memory comes from `pool`
 * and goes back to it when let go.
 */
export type SendWrite = (offset: number, data: Buffer) => Promise<void>;

/** Where full-size chunk buffers come from (chunk-pool.ts). */
export interface ChunkSource {
  readonly size: number;
  take(): Buffer;
}

const MIN_BUFFER = 4096;

/**
 * Where sent requests may be held to travel with others (transport/request-batch.ts): `uncork`
 * sends them now (somebody waits), `soon` at the end of this turn of the event loop.
 */
export interface Cork {
  uncork(): void;
  soon(): void;
}

const NO_CORK: Cork = { uncork: () => undefined, soon: () => undefined };

export class WriteBehind {
  private buffer: Buffer | null = null;
  private bufferOffset = 0;
  private bufferLength = 0;
  /** Data writes sent and not answered: flush waits for these. */
  private readonly inFlight = new Set<Promise<void>>();
  /** Pipelined requests (attribute changes) sent and not answered: counted for room only. */
  private readonly others = new Set<Promise<void>>();
  private failure: unknown = null;
  /** Data was sent since the cork was last told: it may still be held, and a wait must uncork. */
  private unsent = false;
  /** The last chunk sent was full: the writer streams, so the next buffer is a full one at once. */
  private streaming = false;

  constructor(
    private readonly sendWrite: SendWrite,
    private readonly chunkSize: number,
    private readonly maxInFlight: number,
    private readonly pool?: ChunkSource,
    /** Sent writes may be held to travel with others: told before waiting for them, and when the data is complete. */
    private readonly cork: Cork = NO_CORK,
  ) {}

  /** True while data is buffered or on its way. */
  get dirty(): boolean {
    return this.bufferLength > 0 || this.inFlight.size > 0;
  }

  /** Whether pipelined requests are still on their way. */
  get pipelining(): boolean {
    return this.others.size > 0;
  }

  /** True while written data waits in the buffer (not yet sent). */
  get buffered(): boolean {
    return this.bufferLength > 0;
  }

  /**
   * Takes a copy of `data`; resolves once the copy is buffered (or sent, for backpressure).
   * Contiguous writes fill each chunk to the brim, a write split over two chunks if need be: a
   * writer of 1 MiB blocks, which the kernel hands over as 960 + 64 KiB, would otherwise send
   * every 64 KiB piece as a message of its own, twice the messages per MiB.
   */
  async write(offset: number, data: Buffer, length: number): Promise<void> {
    this.raisePending();
    let copied = 0;
    while (copied < length) {
      const at = offset + copied;
      if (this.bufferLength > 0 && at !== this.bufferOffset + this.bufferLength) await this.dispatch();
      if (this.bufferLength === 0) this.bufferOffset = at;
      const n = Math.min(length - copied, this.chunkSize - this.bufferLength);
      this.reserve(this.bufferLength + n);
      data.copy(this.buffer as Buffer, this.bufferLength, copied, copied + n);
      this.bufferLength += n;
      copied += n;
      if (this.bufferLength >= this.chunkSize) await this.dispatch();
    }
  }

  /**
   * A buffer per chunk, handed to SendWrite with the chunk. It starts small and doubles up to a
   * chunk, so the many small files of an untar stay cheap; a streaming writer gets a full chunk
   * from the pool at once.
   */
  private reserve(needed: number): void {
    const size = this.buffer?.length ?? 0;
    if (needed <= size) return;
    let grown = Math.max(size * 2, this.streaming ? this.chunkSize : MIN_BUFFER);
    while (grown < needed) grown *= 2;
    const length = Math.min(Math.max(grown, needed), Math.max(this.chunkSize, needed));
    const next = this.pool && length === this.pool.size ? this.pool.take() : Buffer.allocUnsafe(length);
    this.buffer?.copy(next, 0, 0, this.bufferLength);
    this.buffer = next;
  }

  /** Sends what is buffered and waits for every send; raises the first failure. */
  async flush(): Promise<void> {
    await this.dispatch();
    while (this.inFlight.size > 0) {
      // Data already sent on (pipeline()) is not held: its wait sends nothing else early.
      if (this.unsent) this.beforeWait();
      await Promise.allSettled([...this.inFlight]);
    }
    this.raisePending();
  }

  /**
   * Sends what is buffered and waits until every send and pipelined request is answered, without
   * raising a failure: that stays for the file's next write, flush or fsync (the barrier's wait).
   */
  async settled(): Promise<void> {
    await this.dispatch();
    while (this.inFlight.size + this.others.size > 0) {
      this.beforeWait();
      await Promise.allSettled([...this.inFlight, ...this.others]);
    }
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

  /**
   * Sends what is buffered, then starts `request` without waiting for its reply (only for room
   * in flight); its failure is raised by the next write, flush or fsync.
   */
  async pipeline(request: () => Promise<void>): Promise<void> {
    this.raisePending();
    // A change after data: the program has written what it will (an untar or `cp -p` sets the
    // file's times, owner and mode before close). The data and this change go at the end of
    // this turn, so the agent applies them while the program goes on, and close mostly finds
    // the data answered; the changes after this one wait for the next file's message.
    const complete = this.buffered;
    await this.dispatch();
    await this.room();
    this.track(request(), this.others);
    if (complete) {
      this.unsent = false;
      this.cork.soon();
    }
  }

  /**
   * Sends what is buffered, then starts `request` behind it (a question about the file, not a
   * change: not counted, and its failure is its caller's); resolves once it is started, so that a
   * wait that follows sends both in one message. A failure pending stays for the next flush.
   */
  async after<T>(request: () => Promise<T>): Promise<{ answer: Promise<T> }> {
    await this.dispatch();
    return { answer: request() };
  }

  private async room(): Promise<void> {
    while (this.inFlight.size + this.others.size >= this.maxInFlight) {
      this.beforeWait();
      await Promise.race([...this.inFlight, ...this.others]);
    }
  }

  private async dispatch(): Promise<void> {
    if (this.buffer === null || this.bufferLength === 0) return;
    await this.room();
    if (this.bufferLength === 0) return; // a concurrent dispatch sent it meanwhile
    const data = this.buffer.subarray(0, this.bufferLength);
    const start = this.bufferOffset;
    this.streaming = this.bufferLength >= this.chunkSize;
    this.bufferLength = 0;
    this.buffer = null; // SendWrite's now
    this.unsent = true;
    this.track(this.sendWrite(start, data));
  }

  private beforeWait(): void {
    this.unsent = false;
    this.cork.uncork();
  }

  private track(request: Promise<void>, into = this.inFlight): void {
    const done: Promise<void> = request.then(
      () => { into.delete(done); },
      (err: unknown) => {
        into.delete(done);
        this.failure ??= err;
      },
    );
    into.add(done);
  }
}
