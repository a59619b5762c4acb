/**
 * Which of the slave's devices are terminals a master may relay through a pseudo-terminal of its
 * own: character devices of the kernel's serial drivers (ttyS, ttyUSB, ttyACM, ttyAMA...) and
 * pseudo-terminal slaves (the ptys boards and simulators sit behind), as /proc/tty/drivers
 * lists them. /dev/tty, the console and /dev/ptmx are not: opened elsewhere they mean something
 * else. Where the list cannot be read, no device is taken for a terminal.
 */
import { readFileSync } from 'node:fs';
import type { TerminalKind } from '../devices-backend.js';

interface TerminalDriver { major: number; minorFrom: number; minorTo: number; kind: TerminalKind }

/** Drivers come with modules (usbserial, cdc-acm): the list is read again after this long. */
const REREAD_MS = 5000;

export class TerminalDrivers {
  private drivers: TerminalDriver[] = [];
  private readAt = -Infinity;

  constructor(private readonly listPath = '/proc/tty/drivers') {}

  /** Whether the character device `rdev` (as stat gives it) is a relayable terminal. */
  isTerminal(rdev: bigint): boolean {
    return this.kind(rdev) !== undefined;
  }

  /** What kind of terminal the character device `rdev` is, if it is one. */
  kind(rdev: bigint): TerminalKind | undefined {
    // glibc's major() and minor().
    const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
    const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
    if (Date.now() - this.readAt > REREAD_MS) this.read();
    return this.drivers.find((d) => d.major === major && minor >= d.minorFrom && minor <= d.minorTo)?.kind;
  }

  private read(): void {
    this.readAt = Date.now();
    let text: string;
    try {
      text = readFileSync(this.listPath, 'utf8');
    } catch {
      this.drivers = [];
      return;
    }
    this.drivers = parseTerminalDrivers(text);
  }
}

/** The serial and pty-slave lines of /proc/tty/drivers: `name /dev/path major minors type`. */
export function parseTerminalDrivers(text: string): TerminalDriver[] {
  const drivers: TerminalDriver[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5) continue;
    const type = fields[fields.length - 1] as string;
    if (type !== 'serial' && type !== 'pty:slave') continue;
    const major = Number(fields[fields.length - 3]);
    const [from, to] = (fields[fields.length - 2] as string).split('-').map(Number);
    if (!Number.isInteger(major) || from === undefined || !Number.isInteger(from)) continue;
    drivers.push({ major, minorFrom: from, minorTo: to !== undefined && Number.isInteger(to) ? to : from, kind: type === 'serial' ? 'serial' : 'pty' });
  }
  return drivers;
}
