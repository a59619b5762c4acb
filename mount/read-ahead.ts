/**
 * Reading for one open file. A read the kernel asks for costs at most one round trip; once
 * reads run sequentially (or start at offset 0), whole chunks as large as a bus message allows
 * are fetched ahead, several in flight, so a sequential reader streams at the bus's speed.
 * At most `window + 1` chunks are held per file.
 */
export type FetchRange = (offset: number, length: number) => Promise<Buffer>;

const FETCH_ALIGN = 64 * 1024;

export class ReadAhead {
  private readonly chunks = new Map<number, Promise<Buffer>>();
  private nextExpected = 0;
  /** End of file as a short chunk showed it: nothing is prefetched past it. */
  private knownEnd = Number.POSITIVE_INFINITY;
  /**
   * Moves with every invalidate(). A read that waited across one (the file was written meanwhile)
   * fetches what it still needs without keeping it: the write may not have reached the agent
   * before that fetch, and a kept chunk would answer every later read with the old bytes.
   */
  private generation = 0;

  /**
   * `sizeHint` is the file's size as the mount last knew it (from open, getattr and its own
   * writes): nothing is fetched ahead past it, so reading a small file costs one small request.
   */
  constructor(
    private readonly fetch: FetchRange,
    private readonly chunkSize: number,
    private readonly window: number,
    private readonly sizeHint: () => number = () => Number.POSITIVE_INFINITY,
  ) {}

  /**
   * Copies up to `length` bytes at `offset` into `target`; returns the count. The count is
   * short only at the end of the file: the kernel zero-fills past a short read.
   */
  async read(target: Buffer, offset: number, length: number): Promise<number> {
    let copied = 0;
    for (const piece of await this.readData(offset, length)) copied += piece.copy(target, copied);
    return copied;
  }

  /**
   * Up to `length` bytes at `offset` (short only at the end of the file), as views of the
   * fetched chunks they lie in (one, or two across a chunk's end): the kernel's reads are
   * answered from the chunks themselves, with no buffer to allocate and fill per read. Chunks
   * are never written to once fetched, so a view stays true while it is being answered.
   * `keep` false: fetched for this read alone (written to meanwhile: see `generation`).
   */
  async readData(offset: number, length: number, keep = true): Promise<Buffer[]> {
    if (!keep) return this.fetchRange(offset, length);
    const generation = this.generation;
    const first = Math.floor(offset / this.chunkSize);
    const sequential = offset === 0 || offset === this.nextExpected || this.chunks.has(first);
    this.nextExpected = offset + length;
    if (!sequential) return this.fetchRange(offset, length);
    const last = Math.floor((offset + length - 1) / this.chunkSize);
    this.prefetch(first, last + this.window);
    this.evictBefore(first);
    // Taken before the first wait: the kernel sends reads several at a time, and a later one
    // evicts the chunks behind it, which this one may still need (it would fetch them again).
    const loads: Promise<Buffer>[] = [];
    for (let index = first; index <= last; index++) loads.push(this.chunks.get(index) ?? this.load(index));
    const pieces: Buffer[] = [];
    let at = offset;
    const end = offset + length;
    for (let index = first; index <= last && at < end; index++) {
      const chunk = await (loads[index - first] as Promise<Buffer>);
      const from = at - index * this.chunkSize;
      const to = Math.min(chunk.length, end - index * this.chunkSize);
      if (to >= this.chunkSize || at + (to - from) === end) {
        pieces.push(chunk.subarray(from, to));
        at += to - from;
        continue;
      }
      // Short of its end: the end of the file, or a chunk cut at an older size (see copyInto).
      const target = Buffer.allocUnsafe(end - at);
      pieces.push(target.subarray(0, await this.copyInto(target, at, end - at, generation)));
      return pieces;
    }
    return pieces;
  }

  /**
   * A random read, in requests of at most a chunk (the kernel may ask more than a reply holds):
   * all at once, then as many as came back whole.
   */
  private async fetchRange(offset: number, length: number): Promise<Buffer[]> {
    const requests: Promise<Buffer>[] = [];
    for (let at = 0; at < length; at += this.chunkSize) requests.push(this.fetch(offset + at, Math.min(this.chunkSize, length - at)));
    const pieces: Buffer[] = [];
    for (const [i, piece] of (await Promise.all(requests)).entries()) {
      pieces.push(piece);
      if (piece.length < Math.min(this.chunkSize, length - i * this.chunkSize)) break; // the end of the file
    }
    return pieces;
  }

  private async copyInto(target: Buffer, offset: number, length: number, generation: number): Promise<number> {
    let copied = 0;
    while (copied < length) {
      const position = offset + copied;
      const index = Math.floor(position / this.chunkSize);
      const chunk = await (generation !== this.generation ? this.load(index, false) : this.chunks.get(index) ?? this.load(index));
      const from = position - index * this.chunkSize;
      if (from < chunk.length) {
        const n = Math.min(chunk.length - from, length - copied);
        chunk.copy(target, copied, from, from + n);
        copied += n;
        continue;
      }
      // Past what the chunk holds: the end of the file as far as we know it, or else (it grew,
      // or the chunk was cut at an older size) ask the agent for the rest.
      if (position >= this.sizeHint()) break;
      this.chunks.delete(index);
      const fresh = await this.fetch(position, length - copied);
      if (fresh.length > 0) this.knownEnd = Number.POSITIVE_INFINITY;
      fresh.copy(target, copied, 0, fresh.length);
      copied += fresh.length;
      break; // the agent reads regular files fully: a short answer is the end of the file
    }
    return copied;
  }

  /** The whole file, brought by its open (protocol: fs.open's `whole`): reading it needs no trip. */
  seedWhole(data: Buffer): void {
    if (data.length > this.chunkSize) return;
    this.chunks.set(0, Promise.resolve(data));
    this.knownEnd = data.length;
  }

  /** Forgets everything fetched (the file changed through us). */
  invalidate(): void {
    this.generation++;
    this.chunks.clear();
    this.knownEnd = Number.POSITIVE_INFINITY;
  }

  private prefetch(from: number, to: number): void {
    const end = Math.min(this.knownEnd, this.sizeHint());
    for (let index = from; index <= to; index++) {
      if (index > from && index * this.chunkSize >= end) break;
      if (!this.chunks.has(index)) this.load(index);
    }
  }

  /** Fetches chunk `index`; `keep`: for later reads too (see `generation`). */
  private load(index: number, keep = true): Promise<Buffer> {
    const start = index * this.chunkSize;
    // Up to the expected end of file (rounded up, in case it grew), at most one chunk.
    const expected = this.sizeHint() - start;
    const length = expected > 0 && expected < this.chunkSize
      ? Math.min(this.chunkSize, Math.ceil(expected / FETCH_ALIGN) * FETCH_ALIGN)
      : this.chunkSize;
    const generation = this.generation;
    const pending = this.fetch(start, length).then((data) => {
      // An end seen before the file was written since says nothing of it now.
      if (keep && generation === this.generation && data.length < length) this.knownEnd = Math.min(this.knownEnd, start + data.length);
      return data;
    });
    if (!keep) return pending;
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
