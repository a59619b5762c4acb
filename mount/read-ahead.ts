/**
 * Reading for one open file. A read the kernel asks for costs at most one round trip; once
 * reads run sequentially (or start at offset 0), whole chunks as large as a bus message allows
 * are fetched ahead, several in flight, so a sequential reader streams at the bus's speed.
 * At most `window + 1` chunks are held per file.
 */
export type FetchRange = (offset: number, length: number) => Promise<Buffer>;

export class ReadAhead {
  private readonly chunks = new Map<number, Promise<Buffer>>();
  private nextExpected = 0;
  /** End of file as a short chunk showed it: nothing is prefetched past it. */
  private knownEnd = Number.POSITIVE_INFINITY;

  constructor(
    private readonly fetch: FetchRange,
    private readonly chunkSize: number,
    private readonly window: number,
  ) {}

  /** Copies up to `length` bytes at `offset` into `target`; returns the count (0 at EOF). */
  async read(target: Buffer, offset: number, length: number): Promise<number> {
    const first = Math.floor(offset / this.chunkSize);
    const sequential = offset === 0 || offset === this.nextExpected || this.chunks.has(first);
    this.nextExpected = offset + length;
    if (!sequential) {
      const data = await this.fetch(offset, length);
      data.copy(target, 0, 0, data.length);
      return data.length;
    }
    const last = Math.floor((offset + length - 1) / this.chunkSize);
    this.prefetch(first, last + this.window);
    this.evictBefore(first);
    let copied = 0;
    for (let index = first; index <= last; index++) {
      const chunk = await (this.chunks.get(index) ?? this.load(index));
      const from = offset + copied - index * this.chunkSize;
      if (from >= chunk.length) {
        // End of file as of that fetch. Ask again: the file may have grown since (tail -f).
        this.chunks.delete(index);
        if (copied > 0) break;
        const fresh = await this.fetch(offset, length);
        if (fresh.length > 0) this.knownEnd = Number.POSITIVE_INFINITY;
        fresh.copy(target, 0, 0, fresh.length);
        return fresh.length;
      }
      const n = Math.min(chunk.length - from, length - copied);
      chunk.copy(target, copied, from, from + n);
      copied += n;
      if (chunk.length < this.chunkSize) break;
    }
    return copied;
  }

  /** Forgets everything fetched (the file changed through us). */
  invalidate(): void {
    this.chunks.clear();
    this.knownEnd = Number.POSITIVE_INFINITY;
  }

  private prefetch(from: number, to: number): void {
    for (let index = from; index <= to; index++) {
      if (index * this.chunkSize >= this.knownEnd) break;
      if (!this.chunks.has(index)) this.load(index);
    }
  }

  private load(index: number): Promise<Buffer> {
    const start = index * this.chunkSize;
    const pending = this.fetch(start, this.chunkSize).then((data) => {
      if (data.length < this.chunkSize) this.knownEnd = Math.min(this.knownEnd, start + data.length);
      return data;
    });
    // A failed prefetch must not poison later reads: drop it so the next read retries.
    pending.catch(() => {
      if (this.chunks.get(index) === pending) this.chunks.delete(index);
    });
    this.chunks.set(index, pending);
    return pending;
  }

  private evictBefore(index: number): void {
    for (const key of this.chunks.keys()) if (key < index - 1) this.chunks.delete(key);
  }
}
