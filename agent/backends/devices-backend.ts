/**
 * What the devices service (agent/dev/) asks of the slave's operating system: opening a device
 * as a stream, telling its terminals from other devices, and a terminal's settings and line
 * controls. The tree of devices, --dev-allow and the pushed streams stay in agent/dev/; the
 * system calls are here. One implementation per platform (linux/linux-devices.ts).
 */
import type { Readable } from 'node:stream';
import type { FlockLock, LineChange, WireTermios } from '../../protocol/index.js';

/** What a device that is a terminal is: relayed to the master as a terminal either way. */
export type TerminalKind = 'serial' | 'pty';

export interface DevicesBackend {
  /**
   * Opens the device at host path `path` for streaming: never as the agent's controlling
   * terminal, never blocking (a serial port without carrier waits in open otherwise). `flags`
   * are the master's open flags (read, write, both); others the device does not need are dropped.
   */
  openDevice(path: string, flags: number): number;
  /**
   * A stream of the device's data where the platform can wait for it (a terminal, FIFO or
   * socket), which owns the descriptor (destroying it closes it); undefined for devices read by
   * plain reads, which never wait (null, zero, urandom, disks).
   */
  streamOf(fd: number): Readable | undefined;
  /** read(2) of what the device has now: how many bytes, 0 at its end; EAGAIN (thrown) when nothing is there yet. */
  read(fd: number, buffer: Buffer, length: number): Promise<number>;
  /** write(2): how many bytes of `data` (from `offset`) it took; EAGAIN (thrown) when it takes none now. */
  write(fd: number, data: Uint8Array, offset: number, length: number): number;
  close(fd: number): void;
  /** What kind of terminal the character device `rdev` (as stat gives it) is, if it is one. */
  terminalKind(rdev: bigint): TerminalKind | undefined;
  /** The terminal's settings; ENOTTY where the platform cannot read them. */
  getTermios(fd: number): WireTermios;
  setTermios(fd: number, termios: WireTermios): void;
  /** Makes the terminal raw (no line discipline of the slave's own) and returns its settings before. */
  makeRaw(fd: number): WireTermios;
  /** Applies a line change (speed, stop bits, parity, flow control) to the terminal. */
  changeLine(fd: number, change: LineChange): void;
  /** Drops what the terminal's queue holds, as tcflush(3). */
  flush(fd: number, queue: 'input' | 'output' | 'both'): void;
  /** A break on the line for `ms` (0: the platform's default), as tcsendbreak(3). */
  sendBreak(fd: number, ms: number): Promise<void>;
  /** flock(2) without waiting, as the files backend's. */
  flock(fd: number, lock: FlockLock): boolean;
}
