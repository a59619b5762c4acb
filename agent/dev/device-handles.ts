/**
 * Devices open for masters. Every device is opened O_NONBLOCK, so no read ever holds a thread:
 * terminals, FIFOs and sockets are read through libuv's event loop (a stream that buffers what
 * the device has), other devices (null, zero, urandom, disks) with plain reads, which do not
 * wait. A blocking read from the master waits here, bounded, until the stream has data.
 *
 *   master --dev.write--> device;  device --stream--> buffer --dev.read--> master
 */
import { closeSync, fstatSync, read as readCallback, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { isatty, ReadStream } from 'node:tty';
import { promisify } from 'node:util';
import type { Readable } from 'node:stream';
import { HandleIds, SlaveError } from '../../protocol/index.js';

const readAsync = promisify(readCallback);
/** How long a write to a full terminal is retried before EAGAIN reaches the master. */
const WRITE_RETRY_MS = 5000;

interface Waiter {
  length: number;
  resolve(result: { data: Buffer; eof: boolean }): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

class OpenDevice {
  private ended = false;
  private readonly waiters: Waiter[] = [];

  constructor(readonly fd: number, readonly nonBlocking: boolean, private readonly stream: Readable | undefined) {
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
        const { bytesRead } = await readAsync(this.fd, buffer, 0, length, null);
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

  async write(data: Uint8Array): Promise<number> {
    const deadline = Date.now() + WRITE_RETRY_MS;
    let done = 0;
    while (done < data.length) {
      try {
        done += writeSync(this.fd, data, done, data.length - done);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        if (this.nonBlocking && done > 0) return done;
        if (this.nonBlocking || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 2)); // a terminal's output queue drains quickly
      }
    }
    return done;
  }

  close(): void {
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(new SlaveError('EINTR', 'the device was closed while a read waited'));
    }
    if (this.stream) this.stream.destroy(); // closes the descriptor it owns
    else closeSync(this.fd);
  }
}

export class DeviceHandles {
  private readonly open = new Map<number, OpenDevice>();
  private readonly ids = new HandleIds();

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.open.size;
  }

  add(fd: number, nonBlocking: boolean): number {
    if (this.open.size >= this.limit) {
      closeSync(fd);
      throw new SlaveError('EMFILE', `agent device handle limit of ${this.limit} reached`);
    }
    const st = fstatSync(fd);
    let stream: Readable | undefined;
    if (isatty(fd)) stream = new ReadStream(fd);
    else if (st.isFIFO() || st.isSocket()) stream = new Socket({ fd, readable: true, writable: false });
    const fh = this.ids.take((id) => this.open.has(id));
    this.open.set(fh, new OpenDevice(fd, nonBlocking, stream));
    return fh;
  }

  get(fh: number): OpenDevice {
    const device = this.open.get(fh);
    if (!device) throw new SlaveError('EBADF', `no open device with handle ${fh} on this agent`);
    return device;
  }

  close(fh: number): void {
    const device = this.get(fh);
    this.open.delete(fh);
    device.close();
  }

  closeAll(): void {
    for (const fh of [...this.open.keys()]) this.close(fh);
  }
}
