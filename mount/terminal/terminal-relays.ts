/**
 * The device mount's relayed terminals (terminal-relay.ts), one per slave terminal a program
 * looked up, made when first looked up and kept for the mount's life, so a terminal's path on
 * the master stays the same while the slave's device comes and goes.
 *
 * One timer for all of them, every TICK_MS while any exists: one poll(2) tells which terminals
 * programs have opened since (a pseudo-terminal says POLLHUP only while nobody has it open) or
 * written to since they were last open (POLLIN, nobody holding it), and
 * each one's settings are read (one ioctl) so that a line change reaches the device even when no
 * data follows it, or when it was made with nobody holding the terminal (`stty -F`).
 */
import { chmodSync, chownSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Attr } from '../../protocol/index.js';
import { SlaveError } from '../../protocol/index.js';
import { terminalStates, type TerminalState } from './pty.js';
import { TerminalRelay, type SlaveTerminals } from './terminal-relay.js';

const TICK_MS = 20;
/** Pseudo-terminals one mount may hold (the kernel's default limit is 4096 for everyone). */
const MAX_TERMINALS = 256;

export class TerminalRelays {
  private readonly relays = new Map<string, TerminalRelay>();
  private readonly making = new Map<string, Promise<TerminalRelay>>();
  private timer: NodeJS.Timeout | undefined;

  /** `ptmx`: where pairs come from (/dev/ptmx, or a devpts instance's DIR/ptmx). */
  constructor(
    private readonly ptmx: string, private readonly slave: SlaveTerminals, private readonly log: Logger,
  ) {}

  /**
   * The relay of the slave's terminal at `path`, made if needed, its terminal side owned and
   * permitted as the slave's device is (`attr`): the master's kernel then checks opens as the
   * slave would (ids are the same numbers on both sides, docs/architecture.md, "Callers").
   */
  async relayFor(path: string, attr: Attr): Promise<TerminalRelay> {
    let relay = this.relays.get(path);
    if (!relay) {
      let making = this.making.get(path);
      if (!making) {
        making = this.make(path).finally(() => this.making.delete(path));
        this.making.set(path, making);
      }
      relay = await making;
    }
    try {
      chownSync(relay.slavePath, attr.uid, attr.gid);
      chmodSync(relay.slavePath, attr.mode & 0o7777);
    } catch (err) {
      this.log.debug({ err, path }, 'terminal\'s owner or mode not set');
    }
    return relay;
  }

  private async make(path: string): Promise<TerminalRelay> {
    if (this.relays.size >= MAX_TERMINALS) throw new SlaveError('ENOSPC', `${path}: this mount relays ${MAX_TERMINALS} terminals already`);
    const initial = await this.slave.settings(path).catch((err: unknown) => {
      this.log.debug({ err, path }, 'terminal settings not known before it is opened');
      return null;
    });
    const relay = new TerminalRelay(path, this.ptmx, initial, this.slave, this.log.child({ terminal: path }));
    this.relays.set(path, relay);
    this.log.debug({ path, slavePath: relay.slavePath }, 'terminal relayed');
    this.timer ??= setInterval(() => this.tick(), TICK_MS).unref();
    return relay;
  }

  get(path: string): TerminalRelay | undefined {
    return this.relays.get(path);
  }

  private tick(): void {
    const watched = [...this.relays.values()];
    let states: Map<number, TerminalState>;
    try {
      states = terminalStates(watched.map((r) => r.masterFd));
    } catch (err) {
      this.log.warn({ err }, 'polling the relayed terminals failed');
      return;
    }
    for (const relay of watched) {
      const { closed: nobody, pending } = states.get(relay.masterFd) ?? { closed: false, pending: false };
      switch (relay.watching) {
        // Opened since; or something to read with nobody holding it (terminal-relay.ts says
        // which opens a session); or nothing but perhaps a line set with nobody holding it.
        case 'closed':
          if (!nobody) relay.opened();
          else if (pending) relay.closedWithPending();
          else relay.syncClosedLine();
          break;
        case 'hungup': if (nobody) relay.allClosed(); break;
        case 'open': relay.syncLine(); break;
      }
    }
  }

  /** The agent restarted: open terminals' devices are opened again, or hang up (terminal-relay.ts). */
  agentRestarted(slaveRebooted: boolean): void {
    for (const relay of this.relays.values()) relay.agentRestarted(slaveRebooted);
  }

  close(): void {
    clearInterval(this.timer);
    for (const relay of this.relays.values()) relay.dispose();
    this.relays.clear();
  }
}
