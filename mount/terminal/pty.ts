/**
 * The master's pseudo-terminals, by the ioctls Node does not make (through koffi, as the agent's
 * libc.ts does: a maintained FFI with prebuilt binaries): a new pair from a ptmx (the host's, or
 * a devpts instance of the sidecar's that test containers see), packet mode, the settings of its
 * terminal side, the peer opened from the master side (TIOCGPTPEER) to hang it up or flush it,
 * and poll.
 * The only importer of koffi on the master. Request numbers are the generic Linux ABI's (x86,
 * Arm, RISC-V), as in agent/backends/linux/termios.ts.
 */
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { posix } from 'node:path';
import { SlaveError, TERMIOS2_SIZE, decodeTermios2, encodeTermios2, errnoName, type WireTermios } from '../../protocol/index.js';

const TCGETS2 = 0x802c542a;
const TCSETS2 = 0x402c542b;
const TIOCPKT = 0x5420;
const TIOCSPTLCK = 0x40045431;
const TIOCGPTN = 0x80045430;
const TIOCGPTPEER = 0x5441;
const TIOCVHANGUP = 0x5437;
const TCFLSH = 0x540b;
const TCIFLUSH = 0;
const POLLIN = 0x1;
const POLLHUP = 0x10;

type KoffiFunction = (...args: unknown[]) => number;
interface PtyCalls {
  ioctlBuffer: KoffiFunction;
  ioctlValue: KoffiFunction;
  poll: KoffiFunction;
  dup: KoffiFunction;
  errno(): number;
}

let calls: PtyCalls | undefined;

function ptyCalls(): PtyCalls {
  if (calls) return calls;
  const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  calls = {
    ioctlBuffer: lib.func('int ioctl(int fd, unsigned long request, _Inout_ uint8_t *arg)') as KoffiFunction,
    ioctlValue: lib.func('ioctl', 'int', ['int', 'unsigned long', 'long']) as KoffiFunction,
    poll: lib.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)') as KoffiFunction,
    dup: lib.func('int dup(int fd)') as KoffiFunction,
    errno: () => koffi.errno(),
  };
  return calls;
}

function check(result: number, what: string): number {
  if (result < 0) {
    const errno = errnoName(ptyCalls().errno());
    throw new SlaveError(errno, `${what}: ${errno}`);
  }
  return result;
}

export interface PtyPair {
  /** The master side, ours: non-blocking, in packet mode. */
  masterFd: number;
  /** The terminal side's path, which programs open. */
  slavePath: string;
}

/**
 * A new pair from `ptmx` (`/dev/ptmx`, whose terminals are in /dev/pts, or a devpts instance's
 * `DIR/ptmx`, whose are in DIR). Packet mode, so that a tcflush(3) on the terminal side shows.
 */
export function openPty(ptmx: string): PtyPair {
  const masterFd = openSync(ptmx, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
  try {
    const lib = ptyCalls();
    check(lib.ioctlBuffer(masterFd, TIOCSPTLCK, Buffer.alloc(4)), 'unlockpt');
    const number = Buffer.alloc(4);
    check(lib.ioctlBuffer(masterFd, TIOCGPTN, number), 'ptsname');
    setPacketMode(masterFd, true);
    const dir = ptmx === '/dev/ptmx' ? '/dev/pts' : posix.dirname(ptmx);
    return { masterFd, slavePath: posix.join(dir, String(number.readUInt32LE(0))) };
  } catch (err) {
    closeSync(masterFd);
    throw err;
  }
}

/** Packet mode on the master side: a tcflush(3) on the terminal side shows as a status byte. */
function setPacketMode(masterFd: number, on: boolean): void {
  const mode = Buffer.alloc(4);
  mode.writeInt32LE(on ? 1 : 0);
  check(ptyCalls().ioctlBuffer(masterFd, TIOCPKT, mode), on ? 'packet mode' : 'packet mode off');
}

/** Where TCGETS2 writes: read at once, so one buffer serves every call. */
const termiosScratch = Buffer.alloc(TERMIOS2_SIZE);
/** The last settings read of each master side, raw and decoded: the relay reads them before every keystroke it passes on. */
const lastTermios = new Map<number, { raw: Buffer; termios: WireTermios }>();

/**
 * The terminal side's settings (ioctls on the master act on it). Unchanged since the last call
 * for `masterFd`, the same object as then: nothing allocated or decoded for a keystroke, and a
 * caller can tell "no change" by identity. The objects are never changed in place.
 */
export function getTermios(masterFd: number): WireTermios {
  check(ptyCalls().ioctlBuffer(masterFd, TCGETS2, termiosScratch), 'tcgetattr');
  const last = lastTermios.get(masterFd);
  if (last?.raw.equals(termiosScratch)) return last.termios;
  // Decoded from the bytes alone: a descriptor number used again by another pair is still right.
  const termios = decodeTermios2(termiosScratch);
  lastTermios.set(masterFd, { raw: Buffer.from(termiosScratch), termios });
  return termios;
}

/** Closes a pair's master side (the terminal side goes with its last opener). */
export function closePty(masterFd: number): void {
  lastTermios.delete(masterFd);
  closeSync(masterFd);
}

export function setTermios(masterFd: number, termios: WireTermios): void {
  check(ptyCalls().ioctlBuffer(masterFd, TCSETS2, encodeTermios2(termios)), 'tcsetattr');
}

/** The terminal side, opened from the master (no path, no controlling terminal). */
function openPeer(masterFd: number): number {
  return check(ptyCalls().ioctlValue(masterFd, TIOCGPTPEER, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK), 'TIOCGPTPEER');
}

/** `request` (taking a value) on the terminal side, opened for it and closed again. */
function ioctlOnPeer(masterFd: number, request: number, value: number, what: string): void {
  const peer = openPeer(masterFd);
  try {
    check(ptyCalls().ioctlValue(peer, request, value), what);
  } finally {
    closeSync(peer);
  }
}

/**
 * Opens and closes the terminal side once: from then on the master polls POLLHUP while nobody
 * has it open (a pair whose terminal was never opened does not say so).
 */
export function markClosed(masterFd: number): void {
  closeSync(openPeer(masterFd));
}

/**
 * Hangs up every open descriptor of the terminal side, as a modem hang-up or an unplugged adapter
 * does: their reads return end of file, writes EIO, poll POLLHUP. The pair stays: opening the
 * terminal again works. Needs CAP_SYS_ADMIN (the mount runs as root where it relays terminals).
 */
export function hangUp(masterFd: number): void {
  ioctlOnPeer(masterFd, TIOCVHANGUP, 0, 'TIOCVHANGUP');
}

/**
 * Drops what the terminal side has received and no program read: what the last program left
 * unread, and what the relay wrote after that program closed it and before the relay saw the
 * close. The next program to open it would read that first, where a serial port hands nothing of
 * a closed session to the next (the agent flushes the device's side when it opens it). Packet
 * mode is off for the flush, so that the master is not told of it as of a program's tcflush(3),
 * which the next session would pass on to the device.
 */
export function dropReceived(masterFd: number): void {
  setPacketMode(masterFd, false);
  try {
    ioctlOnPeer(masterFd, TCFLSH, TCIFLUSH, 'tcflush');
  } finally {
    setPacketMode(masterFd, true);
  }
}

/** What poll(2) says of a pair's master side. */
export interface TerminalState {
  /** Nobody has the terminal side open (POLLHUP). */
  closed: boolean;
  /** A read of the master side would not block: a program wrote, or packet mode has news (POLLIN). */
  pending: boolean;
}

/** The state of each master side of `fds`, in one poll(2). */
export function terminalStates(fds: number[]): Map<number, TerminalState> {
  const entries = Buffer.alloc(8 * fds.length);
  fds.forEach((fd, i) => {
    entries.writeInt32LE(fd, i * 8);
    entries.writeInt16LE(POLLIN, i * 8 + 4); // POLLHUP is reported whatever is asked
  });
  check(ptyCalls().poll(entries, fds.length, 0), 'poll');
  const states = new Map<number, TerminalState>();
  fds.forEach((fd, i) => {
    const revents = entries.readInt16LE(i * 8 + 6);
    states.set(fd, { closed: (revents & POLLHUP) !== 0, pending: (revents & POLLIN) !== 0 });
  });
  return states;
}

/**
 * What the master side has to read now, one packet per read (packet mode: a status byte, or a
 * zero byte and data), at most `limit` reads; never blocks (it reads only while poll(2) says
 * POLLIN), and stops at EIO (nobody has the terminal open and nothing is left).
 */
export function readPending(masterFd: number, limit = 64): Buffer[] {
  const packets: Buffer[] = [];
  const buffer = Buffer.alloc(65536);
  for (let i = 0; i < limit && terminalStates([masterFd]).get(masterFd)?.pending === true; i++) {
    let n: number;
    try {
      n = readSync(masterFd, buffer);
    } catch {
      break;
    }
    if (n <= 0) break;
    packets.push(Buffer.from(buffer.subarray(0, n)));
  }
  return packets;
}

/** Another descriptor of `fd`: a stream over it may close it without closing ours. */
export function dup(fd: number): number {
  return check(ptyCalls().dup(fd), 'dup');
}
