/**
 * An open device of the device mount whose data the agent pushes (device-stream.ts): what has
 * arrived waits here for the program's reads, so a read is answered at once when there is data,
 * and poll(2) says readable only then (truthful readiness: a select with a timeout on a quiet
 * device times out). Writes go without waiting for each (a refusal comes back at the next write
 * or at close).
 *
 *   agent --events--> PushedDevice --read--> program;  program --write--> PushedDevice --dev.input--> agent
 *
 * When the agent restarts, the device is opened again on the new one, as files are (issue 6);
 * when the slave rebooted, or the device is not there any more, the program gets what a device
 * that went away gives: EIO to reads and writes, POLLHUP.
 */
import type { Logger } from 'pino';
import { SlaveError, type FlockLock } from '../protocol/index.js';
import { PollEvents } from './mount-fs.js';
import type { DeviceStream, DeviceStreamEvents } from './device-stream.js';

/** Opens (or opens again) the device's stream. */
export type OpenStream = (events: DeviceStreamEvents) => Promise<DeviceStream>;

interface Waiting {
  resolve(): void;
}

export class PushedDevice {
  private readonly chunks: { data: Buffer; used: () => void }[] = [];
  /** Of the first chunk, what reads took already. */
  private taken = 0;
  /** Undefined while the stream lasts; null at end of file; else why it ended. */
  private ended: string | null | undefined;
  private readonly waiting: Waiting[] = [];
  private wake: (() => void) | undefined;
  /** Closed by its program: a restart of the agent leaves it alone. */
  private closed = false;

  private constructor(private stream: DeviceStream, private readonly open: OpenStream, private readonly log: Logger) {}

  static async open(open: OpenStream, log: Logger): Promise<PushedDevice> {
    // Data may come before the stream is ours: it waits in `early`.
    const made: { device?: PushedDevice; ended?: string | null } = {};
    const early: { data: Buffer; used: () => void }[] = [];
    const events: DeviceStreamEvents = {
      data: (data, used) => (made.device ? made.device.arrived(data, used) : early.push({ data, used })),
      end: (errno) => (made.device ? made.device.end(errno) : (made.ended = errno)),
    };
    const device = new PushedDevice(await open(events), open, log);
    made.device = device;
    for (const chunk of early) device.arrived(chunk.data, chunk.used);
    if (made.ended !== undefined) device.end(made.ended);
    return device;
  }

  private events(): DeviceStreamEvents {
    return { data: (data, used) => this.arrived(data, used), end: (errno) => this.end(errno) };
  }

  private arrived(data: Buffer, used: () => void): void {
    if (this.ended !== undefined) {
      used();
      return;
    }
    this.chunks.push({ data, used });
    this.ready();
  }

  private end(errno: string | null): void {
    if (this.ended !== undefined) return;
    this.ended = errno;
    this.ready();
  }

  private ready(): void {
    for (const waiter of this.waiting.splice(0)) waiter.resolve();
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /**
   * Up to `length` bytes of what arrived, into `target`; waits for data unless `nonBlocking`
   * (EAGAIN then), or until `stillWanted` says the reader is gone (EINTR), checked every
   * `checkMs`. 0 at end of file; EIO once the device went away.
   */
  async read(target: Buffer, length: number, nonBlocking: boolean, stillWanted: () => boolean, checkMs: number): Promise<number> {
    while (this.chunks.length === 0) {
      if (this.ended === null) return 0;
      if (this.ended !== undefined) throw new SlaveError('EIO', `${this.stream.path}: the device went away (${this.ended})`);
      if (nonBlocking) throw new SlaveError('EAGAIN', `${this.stream.path}: no data from the device yet`);
      await new Promise<void>((resolve) => {
        const waiter: Waiting = { resolve };
        this.waiting.push(waiter);
        setTimeout(() => {
          const at = this.waiting.indexOf(waiter);
          if (at >= 0) this.waiting.splice(at, 1);
          resolve();
        }, checkMs).unref();
      });
      if (this.chunks.length === 0 && !stillWanted()) throw new SlaveError('EINTR', `${this.stream.path}: the reader is gone`);
    }
    let copied = 0;
    while (copied < length && this.chunks.length > 0) {
      const first = this.chunks[0] as { data: Buffer; used: () => void };
      const n = first.data.copy(target, copied, this.taken, Math.min(first.data.length, this.taken + length - copied));
      copied += n;
      this.taken += n;
      if (this.taken === first.data.length) {
        this.chunks.shift();
        this.taken = 0;
        first.used(); // credit back: the agent may read more of the device
      }
    }
    return copied;
  }

  async write(data: Uint8Array): Promise<number> {
    if (this.ended !== undefined && this.ended !== null) throw new SlaveError('EIO', `${this.stream.path}: the device went away`);
    await this.stream.write(data);
    return data.length;
  }

  /** What poll(2) sees now; `wake` is called once that changes towards readable or hung up. */
  poll(wake: (() => void) | undefined): number {
    let revents = 0;
    if (this.chunks.length > 0 || this.ended === null) revents |= PollEvents.IN;
    if (this.ended !== undefined && this.ended !== null) revents |= PollEvents.HUP | PollEvents.ERR;
    else if (!this.stream.full) revents |= PollEvents.OUT;
    if ((revents & (PollEvents.IN | PollEvents.HUP)) === 0 && wake) this.wake = wake;
    return revents;
  }

  /** Every write sent so far written (close waits for it, as a device's close drains). */
  async settled(): Promise<void> {
    if (this.ended === undefined) await this.stream.settled();
  }

  /**
   * The agent restarted. Unless the slave rebooted, the device is opened again on the new agent
   * (bytes in flight meanwhile are lost, as on a line that glitched); else, or when it is not
   * there, the device went away. A device whose reads had ended (end of file: /dev/null) still
   * took writes and held its flock lock, so it is opened again too: left on the old agent's
   * handle, its writes were answered and then refused as stale until the slave wait ran out, and
   * its lock was lost.
   */
  async agentRestarted(slaveRebooted: boolean): Promise<void> {
    if (!this.opensAgainOnRestart) return;
    const unsent = this.stream.abandon();
    if (slaveRebooted) {
      this.wentAway('EIO');
      return;
    }
    try {
      this.ended = undefined; // the new stream tells again whether reads end
      const stream = await this.open(this.events());
      if (this.closed) {
        await stream.close();
        return;
      }
      this.stream = stream;
      for (const data of unsent) await this.stream.write(data);
      this.log.info({ path: this.stream.path }, 'device opened again on the restarted agent');
    } catch (err) {
      this.log.info({ err, path: this.stream.path }, 'device did not come back with the restarted agent');
      this.wentAway('EIO');
    }
  }

  /** The device is gone, whatever its stream said before (reads and writes: EIO; poll: POLLHUP). */
  private wentAway(errno: string): void {
    this.ended = errno;
    this.ready();
  }

  /**
   * Whether a restarted agent's device is opened again (agentRestarted): it is not closed and
   * did not go away (its reads may have ended). Until then its old stream's requests are
   * answered ESTALE, and its flock lock is taken again once it is open.
   */
  get opensAgainOnRestart(): boolean {
    return !this.closed && (this.ended === undefined || this.ended === null);
  }

  /** flock(2) of the device on the slave, once, by the stream it is read through now. */
  flock(lock: FlockLock): Promise<void> {
    return this.stream.flock(lock);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const chunk of this.chunks.splice(0)) chunk.used();
    this.ended ??= null;
    this.ready();
    await this.stream.close();
  }
}
