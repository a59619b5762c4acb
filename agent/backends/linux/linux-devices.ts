/**
 * The devices service on Linux: open(2) with O_NOCTTY and O_NONBLOCK, terminals told apart by
 * /proc/tty/drivers (tty-drivers.ts), their settings by the termios2 ioctls (termios.ts).
 */
import { constants, openSync } from 'node:fs';
import type { DevicesBackend } from '../devices-backend.js';
import { changeLine, flush, getTermios, makeRaw, sendBreak, setTermios } from './termios.js';
import { TerminalDrivers } from './tty-drivers.js';

const { O_NONBLOCK, O_NOCTTY, O_APPEND, O_NOFOLLOW } = constants;

export function linuxDevices(drivers = new TerminalDrivers()): DevicesBackend {
  return {
    // O_APPEND means nothing to a device; O_NOFOLLOW would refuse the links the tree follows itself.
    openDevice: (path, flags) => openSync(path, (flags & ~(O_APPEND | O_NOFOLLOW)) | O_NONBLOCK | O_NOCTTY),
    terminalKind: (rdev) => drivers.kind(rdev),
    getTermios, setTermios, makeRaw, changeLine, flush, sendBreak,
  };
}
