/**
 * master --stdin--> slave process, batched: what arrives while requests are on their way is
 * gathered into one request of up to `maxChunk`, a few requests in flight. A caller that reads
 * a pipe or a socket stops reading when `write` returns false and resumes on `drain`, so memory
 * stays bounded by about (maxInFlight + 1) chunks.
 */
import type { RemoteProcess } from './remote-process.js';

export interface StdinWriterOptions {
  maxChunk?: number;
  maxInFlight?: number;
  /** There is room again after `write` returned false. */
  onDrain(): void;
  /** The process does not take stdin any more (it closed it or is gone); the rest is dropped. */
  onClosed(err: unknown): void;
}

export class StdinWriter {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private inFlight = 0;
  private ending = false;
  private closed = false;
  private readonly maxChunk: number;
  private readonly maxInFlight: number;

  constructor(private readonly proc: RemoteProcess, private readonly options: StdinWriterOptions) {
    this.maxChunk = options.maxChunk ?? 512 * 1024;
    this.maxInFlight = options.maxInFlight ?? 4;
  }

  /** Queues `data`; false means "stop until drain". */
  write(data: Buffer): boolean {
    if (this.closed || this.ending) return false;
    if (data.length > 0) {
      this.chunks.push(data);
      this.bytes += data.length;
      this.pump();
    }
    return this.bytes < this.maxChunk;
  }

  /** End of input: sent after everything queued (the agent applies requests in order). */
  end(): void {
    if (this.closed || this.ending) return;
    this.ending = true;
    this.pump();
  }

  private pump(): void {
    while (!this.closed && this.bytes > 0 && this.inFlight < this.maxInFlight) {
      const batch = this.take();
      this.inFlight++;
      this.proc.writeStdin(batch).then(() => {
        this.inFlight--;
        const hadNoRoom = this.bytes >= this.maxChunk;
        this.pump();
        if (hadNoRoom && this.bytes < this.maxChunk && !this.closed) this.options.onDrain();
      }, (err: unknown) => this.close(err));
    }
    if (this.ending && this.bytes === 0 && !this.closed) {
      this.closed = true;
      this.proc.endStdin().catch((err: unknown) => this.options.onClosed(err));
    }
  }

  private take(): Buffer {
    if (this.bytes <= this.maxChunk) {
      const all = this.chunks.length === 1 ? this.chunks[0] as Buffer : Buffer.concat(this.chunks, this.bytes);
      this.chunks = [];
      this.bytes = 0;
      return all;
    }
    const parts: Buffer[] = [];
    let size = 0;
    while (size < this.maxChunk) {
      const head = this.chunks[0] as Buffer;
      const room = this.maxChunk - size;
      if (head.length <= room) {
        parts.push(head);
        this.chunks.shift();
        size += head.length;
      } else {
        parts.push(head.subarray(0, room));
        this.chunks[0] = head.subarray(room);
        size += room;
      }
    }
    this.bytes -= size;
    return Buffer.concat(parts, size);
  }

  private close(err: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.chunks = [];
    this.bytes = 0;
    this.options.onClosed(err);
  }
}
