/**
 * The FUSE floor's filesystem: one root directory of files whose bytes are never kept.
 * Writes are dropped (only the size is kept, so stat is right), reads return zeros up to the
 * size. What a workload on it still pays is the kernel, libfuse, our binding and adapter:
 * splitbrain's mount minus the protocol, the bus and the slave's disk.
 */
import { MountFsBase, type DirEntry, type Statfs } from '../mount/mount-fs.js';
import { S_IFDIR, S_IFREG, SlaveError, type Attr } from '../protocol/index.js';

interface NullFile {
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** What passed through, for the server's log: the floor should see the calls splitbrain sees. */
export interface NullFsTally {
  reads: number;
  readBytes: number;
  writes: number;
  writeBytes: number;
  getxattrs: number;
}

const ROOT_INO = 1;
const BLOCK = 4096;

/** Serves files in its root, none of their names' other operations: those answer ENOSYS (MountFsBase). */
export class NullFs extends MountFsBase {
  /** By name in the root directory (no slash). */
  private readonly files = new Map<string, NullFile>();
  /** Open handles keep their file, so one unlinked while open still reads and writes. */
  private readonly handles = new Map<number, NullFile>();
  private nextIno = ROOT_INO + 1;
  private nextFh = 1;
  private readonly startedMs = Date.now();
  private readonly uid = process.getuid?.() ?? 0;
  private readonly gid = process.getgid?.() ?? 0;
  readonly tally: NullFsTally = { reads: 0, readBytes: 0, writes: 0, writeBytes: 0, getxattrs: 0 };

  /** The name of a file in the root; anything deeper cannot exist here. */
  private nameOf(path: string): string {
    const name = path.slice(1);
    if (!path.startsWith('/') || name.length === 0 || name.includes('/')) {
      throw new SlaveError('ENOENT', `${path}: only files in the root exist here`);
    }
    return name;
  }

  private file(path: string): NullFile {
    const file = this.files.get(this.nameOf(path));
    if (!file) throw new SlaveError('ENOENT', `${path}: no such file`);
    return file;
  }

  private handle(fh: number): NullFile {
    const file = this.handles.get(fh);
    if (!file) throw new SlaveError('EBADF', `handle ${fh} is not open`);
    return file;
  }

  private attr(file: NullFile | undefined): Attr {
    const common = { uid: this.uid, gid: this.gid, rdev: 0, blksize: BLOCK, atimeMs: this.startedMs,
      atimeNsec: 0, mtimeNsec: 0, ctimeNsec: 0 };
    if (!file) {
      return {
        ...common, mode: S_IFDIR | 0o755, nlink: 2, size: BLOCK, blocks: BLOCK / 512, ino: ROOT_INO,
        mtimeMs: this.startedMs, ctimeMs: this.startedMs,
      };
    }
    return {
      ...common, mode: S_IFREG | 0o644, nlink: 1, size: file.size, blocks: Math.ceil(file.size / 512),
      ino: file.ino, mtimeMs: file.mtimeMs, ctimeMs: file.ctimeMs,
    };
  }

  private resize(file: NullFile, size: number): void {
    file.size = size;
    file.mtimeMs = file.ctimeMs = Date.now();
  }

  private openHandle(file: NullFile): number {
    const fh = this.nextFh++;
    this.handles.set(fh, file);
    return fh;
  }

  override async getattr(path: string): Promise<Attr> {
    return this.attr(path === '/' ? undefined : this.file(path));
  }

  override async fgetattr(_path: string | null, fh: number): Promise<Attr> {
    return this.attr(this.handle(fh));
  }

  override async access(path: string): Promise<void> {
    if (path !== '/') this.file(path);
  }

  override async statfs(): Promise<Statfs> {
    const blocks = 2 ** 32;
    const files = 1_000_000;
    return {
      bsize: BLOCK, frsize: BLOCK, blocks, bfree: blocks, bavail: blocks,
      files, ffree: files - this.files.size, namemax: 255,
    };
  }

  override async readdir(path: string): Promise<DirEntry[]> {
    if (path !== '/') throw new SlaveError(this.files.has(path.slice(1)) ? 'ENOTDIR' : 'ENOENT', `${path}: not a directory`);
    return [...this.files].map(([name, file]) => ({ name, attr: this.attr(file) }));
  }

  override async open(path: string): Promise<number> {
    return this.openHandle(this.file(path));
  }

  override async create(path: string): Promise<{ fh: number; attr: Attr }> {
    const now = Date.now();
    const file: NullFile = { ino: this.nextIno++, size: 0, mtimeMs: now, ctimeMs: now };
    this.files.set(this.nameOf(path), file);
    return { fh: this.openHandle(file), attr: this.attr(file) };
  }

  override async read(_path: string | null, fh: number, target: Buffer, length: number, offset: number): Promise<number> {
    const count = Math.max(0, Math.min(length, target.length, this.handle(fh).size - offset));
    // The buffer is libfuse's: whatever it held before would otherwise reach the reader.
    target.fill(0, 0, count);
    this.tally.reads++;
    this.tally.readBytes += count;
    return count;
  }

  override async write(_path: string | null, fh: number, _data: Buffer, length: number, offset: number): Promise<number> {
    const file = this.handle(fh);
    this.resize(file, Math.max(file.size, offset + length));
    this.tally.writes++;
    this.tally.writeBytes += length;
    return length;
  }

  override async flush(_path: string | null, fh: number): Promise<void> {
    this.handle(fh);
  }

  override async fsync(_path: string | null, fh: number): Promise<void> {
    this.handle(fh);
  }

  override async release(_path: string | null, fh: number): Promise<void> {
    this.handles.delete(fh);
  }

  override async truncate(path: string, size: number): Promise<void> {
    this.resize(this.file(path), size);
  }

  override async ftruncate(_path: string | null, fh: number, size: number): Promise<void> {
    this.resize(this.handle(fh), size);
  }

  override async unlink(path: string): Promise<void> {
    this.file(path);
    this.files.delete(this.nameOf(path));
  }

  /** No file has attributes: the answer splitbrain gives from its cache for security.capability,
   * which the kernel asks about before writes. ENOSYS would make the kernel stop asking. */
  override async getxattr(path: string, name: string): Promise<Buffer> {
    this.tally.getxattrs++;
    if (path !== '/') this.file(path);
    throw new SlaveError('ENODATA', `${path}: no attribute ${name}`);
  }

  override async listxattr(path: string): Promise<string[]> {
    if (path !== '/') this.file(path);
    return [];
  }
}
