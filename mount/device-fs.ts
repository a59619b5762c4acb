/**
 * The slave's devices as the FUSE adapter sees them (`splitbrain mount --devices`): served with
 * direct I/O and no cache, so every read and write reaches the device, and a read returns what
 * the device had (a blocking read waits for it) instead of a page of a file.
 *
 *   program --read/write--> kernel --> DeviceFs --dev.read/dev.write--> agent --> device
 */
import { constants, readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { HandleIds, SlaveError, S_IFCHR, S_IFLNK, S_IFMT, attrFromWire, type Attr, type FlockLock, type OpReply, type OpRequest, type TimeSpec } from '../protocol/index.js';
import type { AgentClient } from '../transport/agent-client.js';
import { sendByHandle, type AgentHandle, type Reopened } from './agent-handles.js';
import { CallerGroups, type FuseCaller } from './callers.js';
import { MountFsBase, PollEvents, type DirEntry, type Statfs } from './mount-fs.js';
import type { ShownLink, SymlinkView } from './symlink-view.js';
import type { TerminalRelays } from './terminal/terminal-relays.js';
import { DeviceStream } from './device-stream.js';
import { PushedDevice } from './pushed-device.js';
import { DEFAULT_RENEW_MS, LockRenewal, flockOnSlave, type HeldLock } from './flock-wait.js';

/**
 * How long one blocking read waits on the agent before asking again: requests stay bounded,
 * and a killed reader's read ends within this long.
 */
const READ_WAIT_MS = 1000;

const SIGKILL_BIT = 1n << 8n;

/**
 * False once the process is gone or dying. A process killed while its read waits in FUSE does
 * not go away: the kernel keeps it until the read is answered, with SIGKILL pending (any fatal
 * signal becomes one), which /proc shows.
 */
function readerAlive(pid: number): boolean {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return false;
  }
  for (const line of status.split('\n')) {
    const [name, value] = line.split(':\t');
    if ((name === 'SigPnd' || name === 'ShdPnd') && value && (BigInt(`0x${value.trim()}`) & SIGKILL_BIT) !== 0n) return false;
  }
  return true;
}

function refuse(what: string): never {
  throw new SlaveError('EROFS', `${what}: the device mount does not change the slave's /dev`);
}

/**
 * An open device: what the kernel's handle stands for on the agent, and how to open it again;
 * `pushed` where the agent pushes its data (dev.stream), else reads are asked for (older agents).
 */
interface OpenDevice extends AgentHandle {
  readonly path: string;
  readonly flags: number;
  readonly pushed?: PushedDevice;
  /** The flock(2) lock it holds on the slave. */
  flocked?: HeldLock;
}

export class DeviceFs extends MountFsBase {
  /** Open devices, by the mount's own handle numbers (they outlive an agent's). */
  private readonly handles = new Map<number, OpenDevice>();
  private readonly ids = new HandleIds();
  private readonly groups = new CallerGroups();

  /**
   * `terminals`: where the slave's terminals are relayed through pseudo-terminals of the master's
   * (each shown here as a link to one); absent, they are streams like other devices.
   */
  constructor(
    private readonly client: AgentClient, private readonly symlinks: SymlinkView, private readonly log: Logger,
    private readonly terminals?: TerminalRelays,
    /** The agent serves dev.flock: flock(2) of a device binds the slave's programs and other masters. */
    private readonly flocks = false,
    /** How often the locks held are asked for again (a third of the agent's hello.lockLease). */
    lockRenewMs = DEFAULT_RENEW_MS,
  ) {
    super();
    this.locks = new LockRenewal(lockRenewMs, () => this.lockAgain());
  }

  /** The flock locks held on open devices, asked for again while any is (lockAgain). */
  private readonly locks: LockRenewal;

  get servesFlock(): boolean {
    return this.flocks;
  }

  /**
   * flock(2) of an open device on the slave (flock-wait.ts). A terminal relayed through a
   * pseudo-terminal of the master's is opened there, not here: its locks are the master's.
   */
  async flock(_path: string | null, fh: number, op: number, interrupted: () => boolean): Promise<void> {
    const device = this.device(fh);
    await flockOnSlave(op, async (lock) => {
      await this.flockOnce(device, lock);
      this.locks.record(device, lock);
    }, interrupted, () => this.handles.has(fh));
  }

  /** One dev.flock, by the device's stream or handle (opened again on a restarted agent). */
  private async flockOnce(device: OpenDevice, lock: FlockLock): Promise<void> {
    if (device.pushed) return device.pushed.flock(lock);
    await sendByHandle(device, (h, boot) => this.client.call('dev.flock', { fh: h, lock }, { handleBoot: boot }), () => this.reopen(device));
  }

  /** A slave terminal (the agent says S_IFCHR to a master that relays them) as the link to its relay. */
  private async shown(path: string, attr: Attr): Promise<Attr> {
    if (!this.terminals || (attr.mode & S_IFMT) !== S_IFCHR) return attr;
    const relay = await this.terminals.relayFor(path, attr);
    return { ...attr, mode: S_IFLNK | 0o777, size: Buffer.byteLength(relay.slavePath), nlink: 1 };
  }

  private device(fh: number): OpenDevice {
    const device = this.handles.get(fh);
    if (!device) throw new SlaveError('EBADF', `no open device with handle ${fh} on this mount`);
    return device;
  }

  /**
   * A request by an open device's handle. A restarted agent answers ESTALE: the device is opened
   * again by its path (a serial adapter that came back with the slave) and the request sent
   * again; a device that did not come back is EIO.
   */
  private onDevice<K extends 'dev.read' | 'dev.write'>(
    device: OpenDevice, op: K, args: (fh: number) => OpRequest<K>, timeoutMs?: number,
  ): Promise<OpReply<K>> {
    return sendByHandle(device, (fh, boot) => this.client.call(op, args(fh), { handleBoot: boot, timeoutMs }),
      () => this.reopen(device));
  }

  private async reopen(device: OpenDevice): Promise<Reopened> {
    try {
      const { fh } = await this.client.call('dev.open', { path: device.path, flags: device.flags });
      this.log.info({ path: device.path }, 'device opened again on the restarted agent');
      return { agentFh: fh, agentBoot: this.client.bootId ?? '' };
    } catch (err) {
      throw new SlaveError('EIO', `${device.path} did not come back with the restarted slave: ${(err as Error).message}`);
    }
  }

  override async getattr(path: string): Promise<Attr> {
    const terminals = this.terminals !== undefined;
    return this.shown(path, attrFromWire((await this.client.call('dev.getattr', { path, ...(terminals ? { terminals } : {}) })).attr));
  }

  override async fgetattr(path: string | null, _fh: number): Promise<Attr> {
    if (path === null) throw new SlaveError('ENOENT', 'the device is gone');
    return this.getattr(path);
  }

  override async access(): Promise<void> {
    // The agent decides at open (--dev-allow and the device's own permissions).
  }

  override async statfs(): Promise<Statfs> {
    return { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, namemax: 255 };
  }

  override async readdir(path: string): Promise<DirEntry[]> {
    const terminals = this.terminals !== undefined;
    const { entries } = await this.client.call('dev.readdir', { path, ...(terminals ? { terminals } : {}) });
    return entries.map(([name, wire]) => {
      const attr = wire ? attrFromWire(wire) : null;
      // Listed as links; the relay is made when the name is looked up.
      if (attr && terminals && (attr.mode & S_IFMT) === S_IFCHR) return { name, attr: { ...attr, mode: S_IFLNK | 0o777 } };
      return { name, attr };
    });
  }

  /** The agent decides, by --dev-allow and the device's own modes and groups for `caller`. */
  override async open(path: string, openFlags: number, caller: FuseCaller): Promise<number> {
    // O_TRUNC on a device is ignored, as the kernel ignores it for device nodes.
    const flags = openFlags & ~constants.O_TRUNC;
    const wire = this.groups.wire(caller);
    if (this.terminals) {
      const log = this.log.child({ device: path });
      const pushed = await PushedDevice.open((events) => DeviceStream.open(this.client, path, flags, false, wire, events, log), log);
      const fh = this.ids.take((id) => this.handles.has(id));
      this.handles.set(fh, { agentFh: 0, agentBoot: '', path, flags, pushed });
      return fh;
    }
    const { fh: agentFh } = await this.client.call('dev.open', { path, flags }, { caller: wire });
    const fh = this.ids.take((id) => this.handles.has(id));
    this.handles.set(fh, { agentFh, agentBoot: this.client.bootId ?? '', path, flags });
    return fh;
  }

  /** poll(2): what an open device is ready for (pushed devices know; older agents' always are). */
  async poll(fh: number, wake: (() => void) | undefined): Promise<number> {
    const device = this.device(fh);
    return device.pushed ? device.pushed.poll(wake) : PollEvents.IN | PollEvents.OUT;
  }

  /**
   * The agent restarted (slaveRebooted: its host too): open devices are opened again, or go away,
   * and those that held a flock lock take it again (as the file mount's open files do).
   */
  async agentRestarted(slaveRebooted: boolean): Promise<void> {
    await Promise.all([...this.handles.values()].map((device) => device.pushed?.agentRestarted(slaveRebooted)));
    if (!slaveRebooted) await this.locks.now();
  }

  /**
   * Each open device's flock lock asked for again: the agent's lease on it starts again, and one
   * lost (the agent restarted, or the lease ran out while this master was cut off) is taken again
   * unless another holder has it (logged; the program is not told). Returns how many are held.
   */
  private async lockAgain(): Promise<number> {
    return LockRenewal.takeAgain([...this.handles.values()], (device, lock) => this.flockOnce(device, lock), (device, lock, err) => {
      if (![...this.handles.values()].includes(device)) return 'released';
      // A restarted agent's: the stream is being opened again (agentRestarted), which asks then.
      // Not only a streaming device's: /dev/null's reads ended, and its lock was lost when this
      // pass's ESTALE came before the hello that has it opened again.
      if (device.pushed?.opensAgainOnRestart && err instanceof SlaveError && err.errnoName === 'ESTALE') return 'held';
      this.log.warn({ err, path: device.path, lock }, 'a flock lock held on a device was lost (the agent restarted, or its lease ran out) and could not be taken again');
      return 'lost';
    });
  }

  /**
   * Returns what the device has (short reads are normal); a blocking read waits for data, in
   * bounded waits on the agent, until the process it is for is gone (killed): then the read
   * ends, so no read stays behind on the agent to eat the device's next data.
   */
  override async read(_path: string | null, fh: number, target: Buffer, length: number, _offset: number, caller: FuseCaller): Promise<number> {
    const callerPid = caller.pid;
    const device = this.device(fh);
    if (device.pushed) {
      const nonBlocking = (device.flags & constants.O_NONBLOCK) !== 0;
      return device.pushed.read(target, length, nonBlocking, () => callerPid <= 0 || readerAlive(callerPid), READ_WAIT_MS);
    }
    for (;;) {
      const { data, eof } = await this.onDevice(device, 'dev.read', (h) => ({ fh: h, length, waitMs: READ_WAIT_MS }),
        READ_WAIT_MS + 15_000);
      if (data.length > 0) {
        target.set(data.subarray(0, length));
        return Math.min(data.length, length);
      }
      if (eof || !this.handles.has(fh)) return 0;
      if (callerPid > 0 && !readerAlive(callerPid)) throw new SlaveError('EINTR', `reader ${callerPid} is gone`);
    }
  }

  override async write(_path: string | null, fh: number, data: Buffer, length: number): Promise<number> {
    const copy = Buffer.from(data.subarray(0, length));
    const device = this.device(fh);
    if (device.pushed) return device.pushed.write(copy);
    return (await this.onDevice(device, 'dev.write', (h) => ({ fh: h, data: copy }))).written;
  }

  /** close(2): a write the device refused after it was answered is reported here. */
  override async flush(_path: string | null, fh: number): Promise<void> {
    await this.handles.get(fh)?.pushed?.settled();
  }

  override async fsync(): Promise<void> {}

  override async release(_path: string | null, fh: number): Promise<void> {
    const device = this.handles.get(fh);
    this.handles.delete(fh);
    if (!device) return;
    if (device.pushed) {
      await device.pushed.close();
      return;
    }
    await this.client.call('dev.release', { fh: device.agentFh }, { handleBoot: device.agentBoot }).catch((err: unknown) =>
      this.log.debug({ err, fh }, 'device release failed'));
  }

  /** O_TRUNC on a device is ignored, as the kernel ignores it for device nodes. */
  override async truncate(): Promise<void> {}

  override async ftruncate(): Promise<void> {}

  /**
   * Shown as the file mount shows its links (symlink-view.ts), from the device tree's root: an
   * agent that predates `inTree` answers relative targets, which show as they are.
   */
  override async readlink(path: string): Promise<ShownLink> {
    const relay = this.terminals?.get(path) ?? (this.terminals && (await this.getattr(path), this.terminals.get(path)));
    if (relay) return { target: relay.slavePath, keep: false };
    const target = async (link: string) => (await this.client.call('dev.readlink', { path: link, inTree: true })).target;
    return this.symlinks.shown(path, await target(path), { attr: (name) => this.getattr(name).catch(() => null), target });
  }

  override async getxattr(path: string, name: string): Promise<Buffer> {
    throw new SlaveError('ENODATA', `no attribute ${name} on ${path}`);
  }

  override async listxattr(): Promise<string[]> {
    return [];
  }

  override async create(path: string): Promise<{ fh: number; attr: Attr }> { refuse(`create ${path}`); }
  override async unlink(path: string): Promise<void> { refuse(`unlink ${path}`); }
  override async rename(from: string): Promise<void> { refuse(`rename ${from}`); }
  override async link(_existing: string, path: string): Promise<Attr> { refuse(`link ${path}`); }
  override async symlink(_target: string, path: string): Promise<Attr> { refuse(`symlink ${path}`); }
  override async mkdir(path: string): Promise<Attr> { refuse(`mkdir ${path}`); }
  override async rmdir(path: string): Promise<void> { refuse(`rmdir ${path}`); }
  override async chmod(path: string): Promise<void> { refuse(`chmod ${path}`); }
  override async chown(path: string): Promise<void> { refuse(`chown ${path}`); }
  override async utimens(path: string, _atime: TimeSpec, _mtime: TimeSpec): Promise<void> { refuse(`utimens ${path}`); }
  override async mknod(path: string): Promise<Attr> { refuse(`mknod ${path}`); }
  override async setxattr(path: string): Promise<void> { refuse(`setxattr ${path}`); }
  override async removexattr(path: string): Promise<void> { refuse(`removexattr ${path}`); }
}
