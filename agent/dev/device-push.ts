/**
 * A device read for a master as data arrives, and pushed to it (dev.stream): events in order on
 * the master's output subject, at most `window` bytes ahead of the credit it returns, each kept
 * until the master has it, to send again if NATS lost it (as a process's output is: proc/
 * spawned-process.ts). Its end (end of file, or the device gone: EIO) is the last event.
 *
 *   device --stream or reads--> DevicePush --events--> master
 */
import type { Readable } from 'node:stream';
import { encodeDevAck, encodeDevData, encodeDevEnd, errnoOf } from '../../protocol/index.js';


/** Publishes one encoded event on the master's output subject. */
export type EventSink = (event: Uint8Array) => void;

/** While the master keeps up, data goes out in the loop turn it came in: a terminal's echo waits for nothing. */
const KEEPING_UP = 16 * 1024;
/** Else for up to this long more is gathered into one event. */
const GATHER_MS = 1;
/**
 * How long an acknowledgement of the master's inputs waits for a data event to ride on (a
 * terminal's echo comes sooner): acknowledgements only free the master's window, nothing waits
 * for them to see its own data.
 */
const ACK_MS = 5;

/** What the master's inputs (dev.input) have come to: the next seq expected, and the first refusal. */
export interface InputState {
  acked: number;
  errno: string | null;
}

export class DevicePush {
  private seq = 0;
  private inFlight = 0;
  private sentBytes = 0;
  private creditedBytes = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private paused = false;
  /** The device's data ended (end of file, or it went away): nothing more is read. */
  private ended = false;
  /** The handle closed: nothing more is sent at all. */
  private stopped = false;
  /** Events sent and not known received; `end`: the bytes sent up to and including it. */
  private readonly kept: { seq: number; end: number; event: Uint8Array }[] = [];
  private reading = false;
  private reportedAck = 0;
  private reportedErrno: string | null = null;
  private ackTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly fh: number,
    /**
     * A stream over the device (terminals, FIFOs, sockets), or undefined: it is read with plain
     * reads; null: it is not read at all (opened write-only).
     */
    private readonly stream: Readable | undefined | null,
    /** A plain read of the device (DevicesBackend.read). */
    private readonly readDevice: (buffer: Buffer) => Promise<number>,
    private readonly sink: EventSink,
    private readonly window: number,
    private readonly maxChunk: number,
    private readonly inputs: () => InputState,
  ) {
    if (stream) {
      stream.on('data', (chunk: Buffer) => this.arrived(chunk));
      stream.on('end', () => this.end(null));
      // EIO when a pty's other side or a USB adapter is gone: the master gives its reader a hang-up.
      stream.on('error', (err) => this.end(errnoOf(err) ?? 'EIO'));
      stream.resume();
    } else if (stream === undefined) {
      void this.readLoop();
    }
  }

  /** The seq the next event will have. */
  get nextSeq(): number {
    return this.seq;
  }

  /** When its master last sent anything for it (credit, input, a keepalive): its lease. */
  lastHeard = Date.now();

  /** The master has `bytes` more (written out), and every event before `received`. */
  credit(bytes: number, received: number): void {
    this.lastHeard = Date.now();
    this.creditedBytes += bytes;
    this.inFlight = Math.max(0, this.inFlight - bytes);
    let drop = 0;
    while (drop < this.kept.length) {
      const kept = this.kept[drop] as { seq: number; end: number };
      if (kept.seq >= received && kept.end > this.creditedBytes) break;
      drop++;
    }
    if (drop > 0) this.kept.splice(0, drop);
    if (this.paused && this.inFlight < this.window) {
      this.paused = false;
      if (this.stream) this.stream.resume();
      else if (this.stream === undefined) void this.readLoop();
    }
  }

  /** Publishes again every kept event from `from` on (the master missed them). */
  resend(from: number): number {
    let sent = 0;
    for (const kept of this.kept) {
      if (kept.seq < from) continue;
      this.sink(kept.event);
      sent++;
    }
    return sent;
  }

  /** An input was written (or refused): the master hears of it with the next data, or soon. */
  inputTaken(): void {
    this.lastHeard = Date.now();
    if (this.ackTimer || this.stopped) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      const { acked, errno } = this.inputs();
      if (this.stopped || (acked === this.reportedAck && errno === this.reportedErrno)) return;
      this.reportedAck = acked;
      this.reportedErrno = errno;
      this.sink(encodeDevAck(this.fh, acked, errno));
    }, ACK_MS);
  }

  stop(): void {
    clearTimeout(this.ackTimer);
    this.stopped = true;
    this.ended = true;
    this.pending = [];
    this.stream?.removeAllListeners('data');
  }

  private arrived(chunk: Buffer): void {
    if (this.ended) return;
    if (this.pendingBytes + chunk.length > this.maxChunk) this.flush();
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const keepingUp = this.inFlight < KEEPING_UP;
    this.inFlight += chunk.length;
    if (this.inFlight >= this.window) {
      this.paused = true;
      this.stream?.pause();
      this.flush();
      return;
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const flush = () => {
      this.flushScheduled = false;
      this.flush();
    };
    if (keepingUp) setImmediate(flush);
    else setTimeout(flush, GATHER_MS);
  }

  private flush(): void {
    if (this.pendingBytes === 0) return;
    const parts = this.pending;
    this.sentBytes += this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    const { acked, errno } = this.inputs();
    // A refusal needs an ack event of its own; the count rides on the data.
    if (errno === this.reportedErrno) this.reportedAck = acked;
    this.send(encodeDevData(this.fh, this.seq, parts, this.reportedAck), this.sentBytes);
  }

  private send(event: Uint8Array, end: number): void {
    this.kept.push({ seq: this.seq++, end, event });
    this.sink(event);
  }

  private end(errno: string | null): void {
    if (this.ended) return;
    this.flush();
    this.ended = true;
    this.send(encodeDevEnd(this.fh, this.seq, errno), Infinity);
  }

  /** Devices that are not streams (null, zero, urandom, disks): reads that never wait, while credit lasts. */
  private async readLoop(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      while (!this.ended && !this.paused) {
        const buffer = Buffer.allocUnsafe(Math.min(this.maxChunk, Math.max(4096, this.window - this.inFlight)));
        let bytesRead: number;
        try {
          bytesRead = await this.readDevice(buffer);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
            await new Promise((resolve) => setTimeout(resolve, 10));
            continue;
          }
          this.end(errnoOf(err) ?? 'EIO');
          return;
        }
        if (bytesRead === 0) {
          this.end(null);
          return;
        }
        this.arrived(buffer.subarray(0, bytesRead));
        this.flush();
      }
    } finally {
      this.reading = false;
    }
  }
}
