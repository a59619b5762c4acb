/**
 * A terminal's settings on the wire (`WireTermios`, ops.ts) and in Linux's own form: struct
 * termios2 (<asm-generic/termbits.h>: four flag words, the line discipline, 19 control
 * characters and the two speeds in bits per second), which both ends read and write with the
 * TCGETS2/TCSETS2 ioctls. Pure: the ioctls themselves are the agent's and the mount's.
 *
 * A relayed terminal has two halves (docs/architecture.md, "Terminals"): the line discipline
 * (canonical input, echo, signals, input and output processing) is applied by the master's
 * pseudo-terminal, where the test reads; the line itself (speed, character size, parity, stop
 * bits, hardware flow control) by the slave's device, which is otherwise raw so that bytes pass
 * both ways unchanged.
 */
import type { WireTermios } from './ops.js';

export const TERMIOS2_SIZE = 44;
const NCCS = 19;

// c_cflag bits (octal, as in termbits.h).
export const CBAUD = 0o010017;
export const BOTHER = 0o010000;
export const CSIZE = 0o000060;
export const CS8 = 0o000060;
export const CSTOPB = 0o000100;
export const CREAD = 0o000200;
export const PARENB = 0o000400;
export const PARODD = 0o001000;
export const HUPCL = 0o002000;
export const CLOCAL = 0o004000;
export const CIBAUD = 0o02003600000;
export const CMSPAR = 0o10000000000;
export const CRTSCTS = 0o20000000000;
const IBSHIFT = 16;

/**
 * The bits of c_cflag that describe the line and that the slave's device takes from the master's
 * terminal. Not the character size and parity enable: Linux's pseudo-terminals always report 8
 * bits without parity (pty_set_termios), whatever a test sets, so the device keeps its own.
 */
export const LINE_CFLAGS = CSTOPB | PARODD | CMSPAR | CRTSCTS | CLOCAL | HUPCL;

// c_cc indexes of the two that make a read raw.
const VTIME = 5;
const VMIN = 6;

export function decodeTermios2(buffer: Buffer): WireTermios {
  return {
    iflag: buffer.readUInt32LE(0),
    oflag: buffer.readUInt32LE(4),
    cflag: buffer.readUInt32LE(8),
    lflag: buffer.readUInt32LE(12),
    line: buffer.readUInt8(16),
    cc: Uint8Array.from(buffer.subarray(17, 17 + NCCS)),
    ispeed: buffer.readUInt32LE(36),
    ospeed: buffer.readUInt32LE(40),
  };
}

/** The host's byte order is little-endian on every platform the terminal relay runs on (x86, Arm, RISC-V). */
export function encodeTermios2(termios: WireTermios): Buffer {
  const buffer = Buffer.alloc(TERMIOS2_SIZE);
  buffer.writeUInt32LE(termios.iflag >>> 0, 0);
  buffer.writeUInt32LE(termios.oflag >>> 0, 4);
  buffer.writeUInt32LE(termios.cflag >>> 0, 8);
  buffer.writeUInt32LE(termios.lflag >>> 0, 12);
  buffer.writeUInt8(termios.line, 16);
  Buffer.from(termios.cc.subarray(0, NCCS)).copy(buffer, 17);
  buffer.writeUInt32LE(termios.ispeed >>> 0, 36);
  buffer.writeUInt32LE(termios.ospeed >>> 0, 40);
  return buffer;
}

/** The standard speeds' Bnnn codes (termbits.h): 9600 is B9600, 0o15; 115200 is B115200, 0o10002. */
const SPEED_CODES = new Map<number, number>([
  [0, 0], [50, 1], [75, 2], [110, 3], [134, 4], [150, 5], [200, 6], [300, 7], [600, 8], [1200, 9], [1800, 10],
  [2400, 11], [4800, 12], [9600, 13], [19200, 14], [38400, 15], [57600, 0o10001], [115200, 0o10002],
  [230400, 0o10003], [460800, 0o10004], [500000, 0o10005], [576000, 0o10006], [921600, 0o10007],
  [1000000, 0o10010], [1152000, 0o10011], [1500000, 0o10012], [2000000, 0o10013], [2500000, 0o10014],
  [3000000, 0o10015], [3500000, 0o10016], [4000000, 0o10017],
]);

/**
 * `termios` with these speeds: a standard one by its Bnnn code, which every reader of the old
 * termios understands (stty, cfgetospeed: a pseudo-terminal keeps what it is given), any other
 * as bits per second (BOTHER).
 */
export function withSpeeds(termios: WireTermios, ispeed: number, ospeed: number): WireTermios {
  const out = SPEED_CODES.get(ospeed) ?? BOTHER;
  const input = ispeed === ospeed ? 0 : SPEED_CODES.get(ispeed) ?? BOTHER; // 0: as the output speed
  const cflag = (termios.cflag & ~(CBAUD | CIBAUD)) | out | (input << IBSHIFT);
  return { ...termios, cflag: cflag >>> 0, ispeed, ospeed };
}

/**
 * The slave's device as the relay needs it: raw (cfmakeraw's input, output and local flags, a
 * read returning each byte as it comes), receiving, its line as it was.
 */
export function rawLine(termios: WireTermios): WireTermios {
  const cc = Uint8Array.from(termios.cc);
  cc[VMIN] = 1;
  cc[VTIME] = 0;
  return { ...termios, iflag: 0, oflag: 0, lflag: 0, cflag: (termios.cflag | CREAD) >>> 0, cc };
}

/** A change to a terminal's line: new speeds (null: as they are), and `cflagMask`'s bits of c_cflag set to `cflagBits`. */
export interface LineChange { ispeed: number | null; ospeed: number | null; cflagBits: number; cflagMask: number }

/**
 * What changed in the line between two of the master's settings, for the device: the speeds and
 * the line's cflag bits that differ. Null when nothing the device takes changed.
 */
export function lineChange(before: WireTermios, after: WireTermios): LineChange | null {
  const cflagMask = ((before.cflag ^ after.cflag) & LINE_CFLAGS) >>> 0;
  const ispeed = before.ispeed === after.ispeed ? null : after.ispeed;
  const ospeed = before.ospeed === after.ospeed ? null : after.ospeed;
  if (cflagMask === 0 && ispeed === null && ospeed === null) return null;
  return { ispeed, ospeed, cflagBits: (after.cflag & cflagMask) >>> 0, cflagMask };
}

/** `device` with a line change applied. */
export function applyLineChange(device: WireTermios, change: LineChange): WireTermios {
  const cflag = ((device.cflag & ~change.cflagMask) | (change.cflagBits & change.cflagMask)) >>> 0;
  const changed = { ...device, cflag };
  if (change.ispeed === null && change.ospeed === null) return changed;
  return withSpeeds(changed, change.ispeed ?? device.ispeed, change.ospeed ?? device.ospeed);
}
