/**
 * The devices service on Linux: open(2) with O_NOCTTY and O_NONBLOCK, terminals told apart by
 * /proc/tty/drivers (tty-drivers.ts), their settings by the termios2 ioctls (termios.ts).
 */
import { closeSync, constants, fstatSync, openSync, read, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { isatty, ReadStream } from 'node:tty';
import { promisify } from 'node:util';
import type { DevicesBackend } from '../devices-backend.js';
import { flockNow } from './linux-files.js';
import { changeLine, flush, getTermios, makeRaw, sendBreak, setTermios } from './termios.js';
import { TerminalDrivers } from './tty-drivers.js';

const { O_NONBLOCK, O_NOCTTY, O_APPEND, O_NOFOLLOW } = constants;
const readAsync = promisify(read);

export function linuxDevices(drivers = new TerminalDrivers()): DevicesBackend {
  return {
    // O_APPEND means nothing to a device; O_NOFOLLOW would refuse the links the tree follows itself.
    openDevice: (path, flags) => openSync(path, (flags & ~(O_APPEND | O_NOFOLLOW)) | O_NONBLOCK | O_NOCTTY),
    // Through libuv's event loop, which waits for the device without holding a thread.
    streamOf: (fd) => {
      if (isatty(fd)) return new ReadStream(fd);
      const st = fstatSync(fd);
      return st.isFIFO() || st.isSocket() ? new Socket({ fd, readable: true, writable: false }) : undefined;
    },
    read: async (fd, buffer, length) => (await readAsync(fd, buffer, 0, length, null)).bytesRead,
    write: (fd, data, offset, length) => writeSync(fd, data, offset, length),
    close: (fd) => closeSync(fd),
    terminalKind: (rdev) => drivers.kind(rdev),
    getTermios, setTermios, makeRaw, changeLine, flush, sendBreak, flock: flockNow,
  };
}
