/**
 * Devices open for masters. Every device is opened O_NONBLOCK, so no read ever holds a thread:
 * terminals, FIFOs and sockets are read through libuv's event loop (a stream that buffers what
 * the device has), other devices (null, zero, urandom, disks) with plain reads, which do not
 * wait. A blocking read from the master waits here, bounded, until the stream has data.
 *
 *   master --dev.write--> device;  device --stream--> buffer --dev.read--> master
 *
 * A device opened with dev.stream is pushed instead (device-push.ts): no buffer here, no reads
 * asked for. Writes, and a relayed terminal's line changes, are applied one after the other in
 * the order they came: a master sends them without waiting for each.
 */
import type { Readable } from 'node:stream';
import { HandleIds, SlaveError, type WireTermios } from '../../protocol/index.js';
import { DevicePush, type EventSink } from './device-push.js';
import type { DevicesBackend } from '../backends/devices-backend.js';

/** Six of a master's keepalives (mount/device-stream.ts): one that died leaves nothing open for long. */
const DEVICE_LEASE_MS = 30_000;
/** How long a write to a full terminal is retried before EAGAIN reaches the master. */
const WRITE_RETRY_MS = 5000;

interface Waiter {
  length: number;
  resolve(result: { data: Buffer; eof: boolean }): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** How an open device's data reaches its master: asked for (dev.read), or pushed (dev.stream). */
export interface PushTo {
  sink: EventSink;
  window: number;
  maxChunk: number;
  /** A relayed terminal's settings before it was made raw: its own flags come back at close. */
  terminal: WireTermios | null;
  /** Where it is on the slave: a terminal's settings at close are kept by it (dev.tcgetattr). */
  hostPath: string;
  /** Opened for reading: its data is pushed (a write-only device has none to push). */
  readable?: boolean;
  /** Ends its device link (links.ts): when the device closes, or when the master gave the link up. */
  endLink?: () => void;
}

class OpenDevice {
  private ended = false;
  private readonly waiters: Waiter[] = [];
  /** The last write or line change queued: the next runs after it. */
  private queue: Promise<unknown> = Promise.resolve();
  readonly push: DevicePush | undefined;
  /** The master's inputs (dev.input) taken so far: the next seq, and the first the device refused. */
  private readonly inputs = { acked: 0, errno: null as string | null };

  constructor(
    readonly fh: number, readonly fd: number, readonly nonBlocking: boolean,
    private readonly stream: Readable | undefined, private readonly pushTo: PushTo | undefined,
    private readonly keepTermios: (hostPath: string, termios: WireTermios) => void,
    private readonly os: DevicesBackend,
  ) {
    if (pushTo) {
      const read = (buffer: Buffer) => os.read(fd, buffer, buffer.length);
      this.push = new DevicePush(fh, pushTo.readable === false ? null : stream, read, pushTo.sink, pushTo.window, pushTo.maxChunk, () => this.inputs);
      return;
    }
    if (!stream) return;
    stream.pause();
    stream.on('readable', () => this.serve());
    stream.on('end', () => {
      this.ended = true;
      this.serve();
    });
    // EIO when the other end of a pty is gone: to a reader that is end of file.
    stream.on('error', () => {
      this.ended = true;
      this.serve();
    });
  }

  async read(length: number, waitMs: number): Promise<{ data: Buffer; eof: boolean }> {
    if (!this.stream) {
      const buffer = Buffer.allocUnsafe(length);
      try {
        const bytesRead = await this.os.read(this.fd, buffer, length);
        return { data: buffer.subarray(0, bytesRead), eof: bytesRead === 0 };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN' && !this.nonBlocking) return { data: Buffer.alloc(0), eof: false };
        throw err;
      }
    }
    const ready = this.take(length);
    if (ready) return ready;
    if (this.nonBlocking) throw new SlaveError('EAGAIN', 'no data from the device yet');
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        length, resolve, reject,
        timer: setTimeout(() => {
          this.drop(waiter);
          resolve({ data: Buffer.alloc(0), eof: false });
        }, waitMs),
      };
      this.waiters.push(waiter);
    });
  }

  private take(length: number): { data: Buffer; eof: boolean } | undefined {
    const stream = this.stream as Readable;
    if (stream.readableLength > 0) {
      const chunk = stream.read(Math.min(length, stream.readableLength)) as Buffer | null;
      if (chunk) return { data: chunk, eof: false };
    }
    if (this.ended) return { data: Buffer.alloc(0), eof: true };
    // Nothing buffered: ask the stream to read from the device.
    stream.read(0);
    return undefined;
  }

  private serve(): void {
    while (this.waiters.length > 0) {
      const waiter = this.waiters[0] as Waiter;
      const result = this.take(waiter.length);
      if (!result) return;
      this.drop(waiter);
      waiter.resolve(result);
    }
  }

  private drop(waiter: Waiter): void {
    clearTimeout(waiter.timer);
    const at = this.waiters.indexOf(waiter);
    if (at >= 0) this.waiters.splice(at, 1);
  }

  /** Runs `step` after every write and change queued before it. */
  inOrder<T>(step: () => Promise<T> | T): Promise<T> {
    const run = this.queue.then(step, step);
    this.queue = run.catch(() => undefined);
    return run;
  }

  write(data: Uint8Array): Promise<number> {
    return this.inOrder(() => this.writeNow(data));
  }

  /**
   * The master's input `seq`, written in order after what came before: one already taken, or one
   * after a gap (NATS lost the one before), is dropped; the master sends again what is not acked.
   */
  input(seq: number, data: Uint8Array): void {
    if (seq !== this.inputs.acked) return;
    this.inputs.acked++;
    if (this.inputs.errno !== null) {
      this.push?.inputTaken();
      return;
    }
    this.write(data).catch((err: unknown) => {
      this.inputs.errno ??= (err as NodeJS.ErrnoException).code ?? 'EIO';
    }).finally(() => this.push?.inputTaken());
  }

  private async writeNow(data: Uint8Array): Promise<number> {
    const deadline = Date.now() + WRITE_RETRY_MS;
    let done = 0;
    while (done < data.length) {
      try {
        done += this.os.write(this.fd, data, done, data.length - done);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        if (this.nonBlocking && done > 0) return done;
        if (this.nonBlocking || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 2)); // a terminal's output queue drains quickly
      }
    }
    return done;
  }

  /** The master gave up the device's link: its events go on the bus from now. */
  unlink(): void {
    this.pushTo?.endLink?.();
  }

  close(): void {
    this.push?.stop();
    this.pushTo?.endLink?.();
    if (this.pushTo?.terminal) {
      // Its own line discipline back, the line as the master left it: as a port keeps its speed.
      try {
        const { iflag, oflag, lflag, cc } = this.pushTo.terminal;
        const left = { ...getTermiosOr(this.os, this.fd, this.pushTo.terminal), iflag, oflag, lflag, cc };
        this.os.setTermios(this.fd, left);
        this.keepTermios(this.pushTo.hostPath, left);
      } catch {
        // The device is gone.
      }
    }
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(new SlaveError('EINTR', 'the device was closed while a read waited'));
    }
    if (this.stream) this.stream.destroy(); // closes the descriptor it owns
    else this.os.close(this.fd);
  }
}

function getTermiosOr(os: DevicesBackend, fd: number, fallback: WireTermios): WireTermios {
  try {
    return os.getTermios(fd);
  } catch {
    return fallback;
  }
}

export class DeviceHandles {
  private readonly open = new Map<number, OpenDevice>();
  private readonly ids = new HandleIds();

  constructor(
    /** The slave's system calls for devices: terminals' settings are restored through them at close. */
    private readonly os: DevicesBackend,
    private readonly limit: number,
    /** Publishes a pushed device's events on its master's output subject. */
    readonly publish: (subject: string, data: Uint8Array) => void = () => undefined,
    /** A pushed device whose master sends nothing for this long is closed (its lease). */
    leaseMs = DEVICE_LEASE_MS,
  ) {
    setInterval(() => this.closeSilent(leaseMs), Math.min(leaseMs, 5000)).unref();
  }

  /** Serial ports' settings as relays left them, by host path: opening one to ask would reset boards. */
  private readonly keptTermios = new Map<string, WireTermios>();

  get size(): number {
    return this.open.size;
  }

  lastTermios(hostPath: string): WireTermios | undefined {
    return this.keptTermios.get(hostPath);
  }

  /**
   * `fd` open (O_NONBLOCK) as a handle; with `push`, its data is pushed to the master.
   * `readable`: false for a device opened write-only, which nothing reads.
   */
  add(fd: number, nonBlocking: boolean, push?: (fh: number) => PushTo, readable = true): number {
    if (this.open.size >= this.limit) {
      this.os.close(fd);
      throw new SlaveError('EMFILE', `agent device handle limit of ${this.limit} reached`);
    }
    const stream = readable ? this.os.streamOf(fd) : undefined;
    const fh = this.ids.take((id) => this.open.has(id));
    const pushTo = push?.(fh);
    this.open.set(fh, new OpenDevice(fh, fd, nonBlocking, stream, pushTo && { ...pushTo, readable }, (path, termios) => this.keepTermios(path, termios), this.os));
    return fh;
  }

  /** A serial port's settings as a relay (or dev.setline) left them, for dev.tcgetattr. */
  keepTermios(hostPath: string, termios: WireTermios): void {
    this.keptTermios.delete(hostPath);
    this.keptTermios.set(hostPath, termios);
    // Bounded: the oldest go first (a slave has a few ports; a hostile master, any number of paths).
    if (this.keptTermios.size > 1024) this.keptTermios.delete(this.keptTermios.keys().next().value as string);
  }

  get(fh: number): OpenDevice {
    const device = this.open.get(fh);
    if (!device) throw new SlaveError('EBADF', `no open device with handle ${fh} on this agent`);
    return device;
  }

  /** The open device `fh`, undefined when there is none. */
  find(fh: number): OpenDevice | undefined {
    return this.open.get(fh);
  }

  close(fh: number): void {
    const device = this.get(fh);
    this.open.delete(fh);
    device.close();
  }

  closeAll(): void {
    for (const fh of [...this.open.keys()]) this.close(fh);
  }

  /**
   * Closes pushed devices whose master has sent nothing (not even its keepalive, every 5 s:
   * mount/device-stream.ts) for `leaseMs`: a master that died leaves no device open here.
   * Returns how many it closed.
   */
  closeSilent(leaseMs: number): number {
    const now = Date.now();
    let closed = 0;
    for (const [fh, device] of this.open) {
      if (device.push && now - device.push.lastHeard > leaseMs) {
        this.close(fh);
        closed++;
      }
    }
    return closed;
  }
}
