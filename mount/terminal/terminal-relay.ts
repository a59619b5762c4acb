/**
 * One of the slave's terminals as a real terminal on the master: a pseudo-terminal whose
 * terminal side programs open (tcgetattr, select, pyserial, picocom all work on it), and whose
 * master side this relay joins to the slave's device through the agent.
 *
 *   test --write--> pty --read--> relay --dev.write--> agent --> device
 *   device --> agent --events--> relay --write--> pty --read--> test
 *
 * The device is open on the slave while the terminal is open on the master, as a serial port's
 * line is up while a program has it open: the relay notices the first open (TerminalRelays polls
 * for it) and the last close (the master side reads EIO), and opens and closes the device then.
 * What the test sets on the terminal is split (protocol/termios.ts): the line discipline stays
 * with the pseudo-terminal, the line (speed, stop bits, flow control) goes to the device. A
 * tcflush(3) shows in packet mode and is passed on. The device going away (EIO: unplugged, its
 * agent restarted) hangs the terminal up, as a modem does; opening it again opens the device again.
 */
import { ReadStream, WriteStream } from 'node:tty';
import type { Logger } from 'pino';
import { lineChange, type LineChange, type WireTermios } from '../../protocol/index.js';
import type { DeviceStream, DeviceStreamEvents } from '../device-stream.js';
import { closePty, dropReceived, dup, getTermios, hangUp, markClosed, openPty, readPending, setTermios, terminalStates, type PtyPair } from './pty.js';

/** What the relays ask of the agent about the slave's terminals. */
export interface SlaveTerminals {
  /** The settings the agent knows without opening the device, or null (dev.tcgetattr). */
  settings(path: string): Promise<WireTermios | null>;
  /** A line change made while no relay has the device open (dev.setline). */
  setLine(path: string, change: LineChange): Promise<void>;
  /** The device as a pushed stream (terminal: made raw there). */
  open(path: string, events: DeviceStreamEvents): Promise<DeviceStream>;
}

type State = 'closed' | 'open' | 'hungup';

// The first byte of each read in packet mode (tty_ioctl(4), TIOCPKT).
const TIOCPKT_DATA = 0;
const TIOCPKT_FLUSHREAD = 1;
const TIOCPKT_FLUSHWRITE = 2;

export class TerminalRelay {
  private state: State = 'closed';
  private reader: ReadStream | undefined;
  private writer: WriteStream | undefined;
  private stream: DeviceStream | undefined;
  /** The open in progress: writes wait for it, in order. */
  private opening: Promise<DeviceStream | undefined> | undefined;
  /**
   * The last session's device, closing (after the writes the program made before it closed): a
   * new session opens the device only after it, or two readers on the agent would share its data.
   */
  private closing: Promise<void> = Promise.resolve();
  /** The device session whose events the relay takes (startDevice). */
  private session: object | undefined;
  /** Opens seen so far: each open's device session is known by its number. */
  private opens = 0;
  /**
   * The opens whose program closed the terminal while their device was still opening (`echo
   * reboot > /dev/ttyUSB0` is over within a tick; several such, one after the other): what each
   * wrote still goes to the device, then it closes.
   */
  private readonly draining = new Set<number>();
  /** The line as the device has it, as far as the relay knows: changes from it go to the device. */
  private line: WireTermios;
  /** The terminal's settings as the relay made it: a test that has not changed them gets the device's. */
  private fresh: WireTermios;
  private readonly pty: PtyPair;

  /**
   * `initial`: the device's settings as the agent knows them without opening it (dev.tcgetattr),
   * given to the terminal before any program opens it, as the slave's device has them.
   */
  constructor(
    readonly devicePath: string, ptmx: string, initial: WireTermios | null,
    private readonly slave: SlaveTerminals, private readonly log: Logger,
  ) {
    this.pty = openPty(ptmx);
    try {
      if (initial) setTermios(this.pty.masterFd, initial);
      markClosed(this.pty.masterFd);
      this.fresh = getTermios(this.pty.masterFd);
    } catch (err) {
      closePty(this.pty.masterFd);
      throw err;
    }
    this.line = this.fresh;
  }

  /** Where programs open it. */
  get slavePath(): string {
    return this.pty.slavePath;
  }

  get masterFd(): number {
    return this.pty.masterFd;
  }

  /**
   * What TerminalRelays watches for: an open ('closed': nobody has it open), the last close
   * after a hang-up ('hungup': programs may still hold the hung-up terminal), or nothing.
   */
  get watching(): State {
    return this.state;
  }

  /**
   * Every program closed the hung-up terminal: the next open opens the device again, and gets the
   * device's settings, as a first open does (the hang-up reset the pseudo-terminal's own).
   */
  allClosed(): void {
    if (this.state !== 'hungup') return;
    this.state = 'closed';
    readPending(this.pty.masterFd); // dropped: the hung-up session's, not a new program's
    this.fresh = getTermios(this.pty.masterFd);
    this.line = this.fresh;
  }

  /**
   * Nobody has the terminal open, yet its master side has something to read. Data: a program
   * wrote and closed within one tick (`echo reboot > /dev/ttyUSB0`), and a session takes it to
   * the device, as a real line would. Status packets alone (a line change, a tcflush, made by
   * `stty -F` or by the relay setting the terminal up) open nothing: opening a serial port on the
   * slave for them would raise its DTR, which resets many boards. The line change goes as
   * syncClosedLine sends it.
   */
  closedWithPending(): void {
    if (this.state !== 'closed') return;
    const packets = readPending(this.pty.masterFd);
    if (packets.some((packet) => packet[0] === TIOCPKT_DATA && packet.length > 1)) this.opened(packets);
    else this.syncClosedLine();
  }

  /**
   * A program opened the terminal (TerminalRelays saw it): read what it writes, open the device.
   * `written`: what it wrote that was read already (closedWithPending), sent first.
   */
  opened(written: Buffer[] = []): void {
    if (this.state === 'open') return;
    this.state = 'open';
    this.startReader();
    this.writer = new WriteStream(dup(this.pty.masterFd));
    this.writer.on('error', () => undefined); // the reader's error says what happened
    const open = ++this.opens;
    this.opening = this.closing.then(() => this.startDevice(open));
    for (const packet of written) this.fromTest(packet);
  }

  /** Reads what programs write to the terminal, until the last of them closes it. */
  private startReader(): void {
    const reader = new ReadStream(dup(this.pty.masterFd));
    this.reader = reader;
    reader.on('data', (chunk: Buffer) => this.fromTest(chunk));
    // EIO: the last program closed the terminal (or it was hung up and then closed).
    reader.on('error', () => {
      if (this.reader === reader) void this.closed();
    });
    // Or end of file: libuv ends a stream whose read came back short when the poll that woke it
    // said hang-up (a program that wrote and closed at once, `echo reboot > /dev/ttyUSB0`). That
    // poll may be older than the read: a program that opened the terminal between the two (a
    // session started for what another wrote and closed, say) still has it. What is left to read
    // is read here first; then the session ends only if nobody has the terminal open now, and
    // otherwise goes on with a new reader.
    reader.on('end', () => {
      if (this.state !== 'open' || this.reader !== reader) return;
      for (const packet of readPending(this.pty.masterFd)) this.fromTest(packet);
      if (terminalStates([this.pty.masterFd]).get(this.pty.masterFd)?.closed !== false) {
        void this.closed();
        return;
      }
      this.log.debug({ path: this.devicePath }, 'terminal read ended while a program has it open: reading on');
      reader.destroy();
      this.startReader();
    });
  }

  /** Opens the slave's device; `unsent`: what the test wrote that a restarted agent never took. */
  private async startDevice(open: number, unsent: Uint8Array[] = [], reopened = false): Promise<DeviceStream | undefined> {
    // Events of a device session this relay no longer has (closed, or replaced) go nowhere.
    const session = {};
    this.session = session;
    const current = () => this.session === session;
    try {
      const stream = await this.slave.open(this.devicePath, {
        data: (chunk, used) => (current() ? this.toTest(chunk, used) : used()),
        end: (errno) => (current() ? this.deviceEnded(errno) : undefined),
      });
      if (this.state !== 'open' || !current()) {
        if (this.draining.delete(open)) {
          // Closed while opening: the line and the writes queued on this opening go, then
          // stopStreams' close (in that order: each waits on this promise).
          this.startLine(stream, reopened);
          return stream;
        }
        void stream.close();
        return undefined;
      }
      this.stream = stream;
      this.startLine(stream, reopened);
      for (const data of unsent) await stream.write(data);
      return stream;
    } catch (err) {
      this.draining.delete(open);
      this.log.warn({ err, path: this.devicePath }, 'terminal could not be opened on the slave: hanging it up');
      this.hangUp();
      return undefined;
    }
  }

  /**
   * A test that has not set the terminal yet sees the device's settings, as on the slave; one
   * that has (pyserial sets it right after opening) has its line applied to the device. Opened
   * again on a restarted agent, the device (left raw by the agent that died) takes the line only.
   */
  private startLine(stream: DeviceStream, reopened: boolean): void {
    if (!stream.termios) return;
    let current = getTermios(this.pty.masterFd);
    if (!reopened && sameTermios(current, this.fresh)) {
      setTermios(this.pty.masterFd, stream.termios);
      current = getTermios(this.pty.masterFd);
      this.line = stream.termios;
    } else {
      this.line = stream.termios;
    }
    this.syncLine(current, stream);
  }

  /** Sends what changed in the terminal's line (TerminalRelays asks at every tick, and before data). */
  syncLine(current = this.state === 'open' && this.stream ? getTermios(this.pty.masterFd) : undefined, stream = this.stream): void {
    if (!current || !stream || current === this.line) return;
    const change = lineChange(this.line, current);
    this.line = current;
    if (change) stream.control('dev.termios', change);
  }

  /**
   * Nobody has the terminal open, and its line is not the one the device was last given: a program
   * opened it, set it and closed it within one tick (`stty -F /dev/ttyUSB0 9600`). The device
   * takes the change as that command on the slave would give it; a session opened after waits
   * for it (`closing`).
   */
  syncClosedLine(): void {
    const current = getTermios(this.pty.masterFd);
    const change = lineChange(this.line, current);
    this.line = current;
    if (!change) return;
    const set = this.closing.then(() => this.slave.setLine(this.devicePath, change)).catch((err: unknown) => {
      this.log.warn({ err, path: this.devicePath }, 'the terminal\'s line did not reach the slave\'s device');
    });
    this.closing = set;
  }

  private fromTest(packet: Buffer): void {
    const status = packet[0];
    if (status === undefined) return;
    if (status !== TIOCPKT_DATA) {
      if (status & TIOCPKT_FLUSHREAD) void this.whenOpen((s) => s.control('dev.flush', { queue: 'input' }));
      if (status & TIOCPKT_FLUSHWRITE) void this.whenOpen((s) => s.control('dev.flush', { queue: 'output' }));
      return;
    }
    const data = packet.subarray(1);
    const stream = this.stream;
    if (stream && !stream.isEnded && !stream.full) {
      // The common case, a keystroke: sent in this turn of the loop, nothing awaited.
      this.syncLine(); // a speed set just before the data goes first
      stream.write(data).catch((err: unknown) => this.log.warn({ err, path: this.devicePath }, 'write to the slave\'s terminal failed'));
      return;
    }
    this.reader?.pause(); // the next read waits for this write's turn: order, and back-pressure
    void this.whenOpen(async (stream) => {
      this.syncLine(); // a speed set just before the data goes first
      await stream.write(data);
    }).finally(() => this.reader?.resume());
  }

  private async whenOpen(use: (stream: DeviceStream) => void | Promise<void>): Promise<void> {
    const stream = this.stream ?? await this.opening;
    if (!stream || stream.isEnded) return;
    try {
      await use(stream);
    } catch (err) {
      // A write the device refused: the terminal cannot report it, as a real line would not.
      this.log.warn({ err, path: this.devicePath }, 'write to the slave\'s terminal failed');
    }
  }

  private toTest(chunk: Buffer, used: () => void): void {
    if (!this.writer || this.state !== 'open') {
      used();
      return;
    }
    this.writer.write(chunk, () => used());
  }

  private deviceEnded(errno: string | null): void {
    this.log.info({ path: this.devicePath, errno }, 'the slave\'s terminal went away: hanging up');
    this.hangUp();
  }

  /**
   * The agent restarted. Unless the slave rebooted (its devices were closed: a board on the line
   * was reset), an open terminal's device is opened again on the new agent and the test's
   * terminal goes on; else, or when the device is not there, it hangs up.
   */
  agentRestarted(slaveRebooted: boolean): void {
    if (this.state !== 'open') return;
    if (slaveRebooted) {
      this.hangUp();
      return;
    }
    const unsent = this.stream?.abandon() ?? [];
    this.stream = undefined;
    this.opening = this.startDevice(this.opens, unsent, true);
  }

  /** The device is gone: programs that have the terminal open get a hang-up. */
  hangUp(): void {
    if (this.state !== 'open') return;
    this.state = 'hungup';
    this.stopStreams();
    try {
      hangUp(this.pty.masterFd);
    } catch (err) {
      this.log.warn({ err, path: this.devicePath }, 'terminal could not be hung up');
    }
  }

  private async closed(): Promise<void> {
    if (this.state === 'closed') return;
    // What the program set last (a speed set just before it closed, between two of
    // TerminalRelays' ticks) reaches the device before the device closes, as on a real line.
    if (this.state === 'open') {
      try {
        this.syncLine();
      } catch (err) {
        this.log.debug({ err, path: this.devicePath }, 'terminal\'s last settings not read');
      }
    }
    this.state = 'closed';
    if (this.stream === undefined) this.draining.add(this.opens);
    this.stopStreams();
    try {
      dropReceived(this.pty.masterFd);
    } catch (err) {
      this.log.warn({ err, path: this.devicePath }, 'what the closed terminal had received could not be dropped');
    }
  }

  private stopStreams(): void {
    this.reader?.destroy();
    this.writer?.destroy();
    this.reader = undefined;
    this.writer = undefined;
    const stream = this.stream;
    const opening = this.opening;
    this.stream = undefined;
    this.opening = undefined;
    this.session = undefined;
    const closed = stream ? stream.close() : opening?.then((s) => s?.close());
    this.closing = Promise.all([this.closing, closed]).then(() => undefined, () => undefined);
  }

  /** Nobody may open it any more: the device closes, the pair goes. */
  dispose(): void {
    if (this.state === 'open') this.hangUp();
    this.stopStreams();
    this.state = 'closed';
    this.draining.clear();
    closePty(this.pty.masterFd);
  }
}

function sameTermios(a: WireTermios, b: WireTermios): boolean {
  return a.iflag === b.iflag && a.oflag === b.oflag && a.cflag === b.cflag && a.lflag === b.lflag
    && a.ispeed === b.ispeed && a.ospeed === b.ospeed && Buffer.compare(Buffer.from(a.cc), Buffer.from(b.cc)) === 0;
}
