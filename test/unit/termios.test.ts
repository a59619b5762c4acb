/**
 * A terminal's settings on the wire and in termios2 form (protocol/termios.ts), and which
 * devices the agent takes for terminals (agent/backends/linux/tty-drivers.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BOTHER, CBAUD, CRTSCTS, CS8, CSIZE, CSTOPB, HUPCL, PARENB, applyLineChange, decodeTermios2, encodeTermios2, lineChange,
  rawLine, withSpeeds, type WireTermios,
} from '../../protocol/index.js';
import { parseTerminalDrivers } from '../../agent/backends/linux/tty-drivers.js';

const cooked: WireTermios = {
  iflag: 0o2406, oflag: 0o5, cflag: 0o277 | HUPCL, lflag: 0o105073, line: 0,
  cc: Uint8Array.from([3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0]), ispeed: 38400, ospeed: 38400,
};

describe('termios', () => {
  it('round-trips termios2 (44 bytes, little-endian) exactly', () => {
    const bytes = encodeTermios2(cooked);
    assert.equal(bytes.length, 44);
    assert.deepEqual(decodeTermios2(bytes), cooked);
  });

  it('sets a standard speed by its Bnnn code (which stty and the old termios read) and any other in bits per second', () => {
    const fast = withSpeeds(cooked, 115200, 115200);
    assert.equal(fast.cflag & CBAUD, 0o10002);
    assert.equal(fast.ospeed, 115200);
    const odd = withSpeeds(cooked, 250000, 250000);
    assert.equal(odd.cflag & CBAUD, BOTHER);
    assert.equal(odd.ospeed, 250000);
    assert.equal(withSpeeds(cooked, 9600, 9600).cflag & CBAUD, 13);
  });

  it('makes the device raw but keeps its line', () => {
    const raw = rawLine({ ...cooked, cflag: cooked.cflag | CSTOPB | CRTSCTS });
    assert.equal(raw.iflag, 0);
    assert.equal(raw.oflag, 0);
    assert.equal(raw.lflag, 0);
    assert.equal(raw.cflag & (CSTOPB | CRTSCTS), CSTOPB | CRTSCTS);
    assert.equal(raw.cc[6], 1); // VMIN
    assert.equal(raw.cc[5], 0); // VTIME
  });

  it('passes on what changed in the line, never the character size or parity a pseudo-terminal cannot show', () => {
    assert.equal(lineChange(cooked, cooked), null);
    const change = lineChange(cooked, { ...withSpeeds(cooked, 57600, 57600), cflag: withSpeeds(cooked, 57600, 57600).cflag | CSTOPB });
    assert.deepEqual(change, { ispeed: 57600, ospeed: 57600, cflagBits: CSTOPB, cflagMask: CSTOPB });
    // A pty reports CS8 and no PARENB whatever was set: the device keeps its own.
    assert.equal(lineChange({ ...cooked, cflag: (cooked.cflag & ~CSIZE) | PARENB }, { ...cooked, cflag: cooked.cflag | CS8 }), null);
    const device = { ...cooked, cflag: (cooked.cflag & ~CSIZE) | 0o40 | PARENB }; // 7E
    const applied = applyLineChange(device, change as NonNullable<typeof change>);
    assert.equal(applied.cflag & (CSIZE | PARENB), 0o40 | PARENB, 'the device keeps 7E');
    assert.equal(applied.cflag & CSTOPB, CSTOPB);
    assert.equal(applied.ospeed, 57600);
  });

  it('takes serial and pty-slave drivers from /proc/tty/drivers for terminals, nothing else', () => {
    const drivers = parseTerminalDrivers([
      '/dev/tty             /dev/tty        5       0 system:/dev/tty',
      '/dev/console         /dev/console    5       1 system:console',
      '/dev/ptmx            /dev/ptmx       5       2 system',
      'usbserial            /dev/ttyUSB   188 0-511 serial',
      'serial               /dev/ttyS       4 64-111 serial',
      'pty_slave            /dev/pts      136 0-1048575 pty:slave',
      'pty_master           /dev/ptm      128 0-1048575 pty:master',
      'garbage',
    ].join('\n'));
    assert.deepEqual(drivers, [
      { major: 188, minorFrom: 0, minorTo: 511, kind: 'serial' },
      { major: 4, minorFrom: 64, minorTo: 111, kind: 'serial' },
      { major: 136, minorFrom: 0, minorTo: 1048575, kind: 'pty' },
    ]);
  });
});
