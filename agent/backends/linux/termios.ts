/**
 * A terminal device's settings and line controls on the slave, by ioctl (libc.ts): termios2
 * (any speed, in bits per second), flushing its queues and sending a break. The request
 * numbers are those of the generic Linux ABI (<asm-generic/ioctls.h>), which x86, Arm and
 * RISC-V use; on other platforms a terminal is served as a plain stream (ENOTTY here).
 */
import { arch, platform } from 'node:os';
import {
  SlaveError, TERMIOS2_SIZE, applyLineChange, decodeTermios2, encodeTermios2, rawLine, type LineChange, type WireTermios,
} from '../../../protocol/index.js';
import { libc, libcFailure, type Libc } from './libc.js';

const TCGETS2 = 0x802c542a;
const TCSETS2 = 0x402c542b;
const TCFLSH = 0x540b;
const TIOCSBRK = 0x5427;
const TIOCCBRK = 0x5428;
const FLUSH = { input: 0, output: 1, both: 2 } as const;

const GENERIC_ABI = platform() === 'linux' && ['x64', 'arm64', 'arm', 'riscv64', 'ia32'].includes(arch());

function terminalCalls(what: string): Libc {
  const lib = GENERIC_ABI ? libc() : null;
  if (!lib) throw new SlaveError('ENOTTY', `${what}: terminal settings are not available on this slave (${platform()}/${arch()})`);
  return lib;
}

export function getTermios(fd: number): WireTermios {
  const lib = terminalCalls('tcgetattr');
  const buffer = Buffer.alloc(TERMIOS2_SIZE);
  if (lib.ioctlBuffer(fd, TCGETS2, buffer) !== 0) throw libcFailure(lib, 'tcgetattr');
  return decodeTermios2(buffer);
}

export function setTermios(fd: number, termios: WireTermios): void {
  const lib = terminalCalls('tcsetattr');
  if (lib.ioctlBuffer(fd, TCSETS2, encodeTermios2(termios)) !== 0) throw libcFailure(lib, 'tcsetattr');
}

/** What a terminal's settings were, and the device made raw for the relay (its line kept). */
export function makeRaw(fd: number): WireTermios {
  const before = getTermios(fd);
  setTermios(fd, rawLine(before));
  return before;
}

/** A line change from the master (ops.ts, dev.termios) applied to the device. */
export function changeLine(fd: number, change: LineChange): void {
  setTermios(fd, applyLineChange(getTermios(fd), change));
}

export function flush(fd: number, queue: keyof typeof FLUSH): void {
  const lib = terminalCalls('tcflush');
  if (lib.ioctlValue(fd, TCFLSH, FLUSH[queue]) !== 0) throw libcFailure(lib, 'tcflush');
}

/** What tcsendbreak(fd, 0) sends on Linux (TCSBRK 0): a quarter of a second. */
const DEFAULT_BREAK_MS = 250;

/**
 * A break of `ms` milliseconds (0: the default): on (TIOCSBRK), a timer, off. Not TCSBRK, which
 * would hold the agent's one thread for the whole break.
 */
export async function sendBreak(fd: number, ms: number): Promise<void> {
  const lib = terminalCalls('tcsendbreak');
  ms ||= DEFAULT_BREAK_MS;
  if (lib.ioctlValue(fd, TIOCSBRK, 0) !== 0) throw libcFailure(lib, 'TIOCSBRK');
  await new Promise((resolve) => setTimeout(resolve, ms));
  if (lib.ioctlValue(fd, TIOCCBRK, 0) !== 0) throw libcFailure(lib, 'TIOCCBRK');
}
