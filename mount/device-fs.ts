/**
 * The slave's devices as the FUSE adapter sees them (`splitbrain mount --devices`): served with
 * direct I/O and no cache, so every read and write reaches the device, and a read returns what
 * the device had (a blocking read waits for it) instead of a page of a file.
 *
 *   program --read/write--> kernel --> DeviceFs --dev.read/dev.write--> agent --> device
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { SlaveError, attrFromWire, type Attr, type TimeSpec } from '../protocol/index.js';
import type { AgentClient } from '../transport/agent-client.js';
import type { MountFs, Statfs } from './mount-fs.js';

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

export class DeviceFs implements MountFs {
  /** Open devices, by the agent's handle (the kernel holds the same number). */
  private readonly handles = new Set<number>();

  constructor(private readonly client: AgentClient, private readonly log: Logger) {}

  async getattr(path: string): Promise<Attr> {
    return attrFromWire((await this.client.call('dev.getattr', { path })).attr);
  }

  async fgetattr(path: string | null, _fh: number): Promise<Attr> {
    if (path === null) throw new SlaveError('ENOENT', 'the device is gone');
    return this.getattr(path);
  }

  async access(): Promise<void> {
    // The agent decides at open (--dev-allow and the device's own permissions).
  }

  async statfs(): Promise<Statfs> {
    return { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, namemax: 255 };
  }

  async readdir(path: string): Promise<string[]> {
    return (await this.client.call('dev.readdir', { path })).entries.map(([name]) => name);
  }

  async open(path: string, flags: number): Promise<number> {
    const { fh } = await this.client.call('dev.open', { path, flags });
    this.handles.add(fh);
    return fh;
  }

  /**
   * Returns what the device has (short reads are normal); a blocking read waits for data, in
   * bounded waits on the agent, until the process it is for is gone (killed): then the read
   * ends, so no read stays behind on the agent to eat the device's next data.
   */
  async read(_path: string | null, fh: number, target: Buffer, length: number, _offset: number, callerPid = 0): Promise<number> {
    for (;;) {
      const { data, eof } = await this.client.call('dev.read', { fh, length, waitMs: READ_WAIT_MS },
        { timeoutMs: READ_WAIT_MS + 15_000 });
      if (data.length > 0) {
        target.set(data.subarray(0, length));
        return Math.min(data.length, length);
      }
      if (eof || !this.handles.has(fh)) return 0;
      if (callerPid > 0 && !readerAlive(callerPid)) throw new SlaveError('EINTR', `reader ${callerPid} is gone`);
    }
  }

  async write(_path: string | null, fh: number, data: Buffer, length: number): Promise<number> {
    return (await this.client.call('dev.write', { fh, data: Buffer.from(data.subarray(0, length)) })).written;
  }

  async flush(): Promise<void> {}

  async fsync(): Promise<void> {}

  async release(_path: string | null, fh: number): Promise<void> {
    this.handles.delete(fh);
    await this.client.call('dev.release', { fh }).catch((err: unknown) =>
      this.log.debug({ err, fh }, 'device release failed'));
  }

  /** O_TRUNC on a device is ignored, as the kernel ignores it for device nodes. */
  async truncate(): Promise<void> {}

  async ftruncate(): Promise<void> {}

  async readlink(path: string): Promise<string> {
    return (await this.client.call('dev.readlink', { path })).target;
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    throw new SlaveError('ENODATA', `no attribute ${name} on ${path}`);
  }

  async listxattr(): Promise<string[]> {
    return [];
  }

  async create(path: string): Promise<number> { refuse(`create ${path}`); }
  async unlink(path: string): Promise<void> { refuse(`unlink ${path}`); }
  async rename(from: string): Promise<void> { refuse(`rename ${from}`); }
  async link(_existing: string, path: string): Promise<void> { refuse(`link ${path}`); }
  async symlink(_target: string, path: string): Promise<void> { refuse(`symlink ${path}`); }
  async mkdir(path: string): Promise<void> { refuse(`mkdir ${path}`); }
  async rmdir(path: string): Promise<void> { refuse(`rmdir ${path}`); }
  async chmod(path: string): Promise<void> { refuse(`chmod ${path}`); }
  async chown(path: string): Promise<void> { refuse(`chown ${path}`); }
  async utimens(path: string, _atime: TimeSpec, _mtime: TimeSpec): Promise<void> { refuse(`utimens ${path}`); }
  async mknod(path: string): Promise<void> { refuse(`mknod ${path}`); }
  async setxattr(path: string): Promise<void> { refuse(`setxattr ${path}`); }
  async removexattr(path: string): Promise<void> { refuse(`removexattr ${path}`); }
}
