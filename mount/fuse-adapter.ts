/**
 * The only importer of the FUSE binding (mount/native/): turns the kernel's node-based requests
 * into MountFs calls by path, answers with what the kernel may cache and for how long, and
 * sends it invalidations when the slave changes.
 *
 * The kernel keeps names, attributes and "no such name" answers for the timeouts given here
 * (`-o entry_timeout`, ...), so most stat calls never leave it. What keeps those answers true:
 * the kernel applies the mount's own changes itself, and everything else (a change on the slave,
 * a bridged command, a restarted agent) reaches it through invalidate*().
 */
import type { Logger } from 'pino';
import { errnoNumber, errnoOf, NAME_MAX, nameFromBytes, nameToBytes, SlaveError, type Attr, type TimeSpec } from '../protocol/index.js';
import type { FuseCaller } from './callers.js';
import { GROUP_IDS, OVERFLOW_ID, USER_IDS } from './id-maps.js';
import type { DirEntry, MountFs } from './mount-fs.js';
import {
  fuseBinding, OP_NAMES, type FuseBinding, type FuseRequest, type MountHandle, type OpName, type RequestHandle,
} from './native/binding.js';
import { joinPath, KernelCache, type KernelTimeouts } from './kernel-cache.js';
import { NodeTable, type FsNode } from './node-table.js';

export interface FuseMountOptions {
  mountPath: string;
  /** Mount options for the kernel (allow_other, ro, fsname=...), already validated. */
  kernelOptions: string[];
  timeouts: KernelTimeouts;
  /** No page cache: reads and writes go to the filesystem as made (devices). */
  directIo: boolean;
  /** The kernel checks permissions (and POSIX ACLs) itself: allow_other mounts. */
  kernelChecks: boolean;
  /**
   * The kernel's page cache follows the mtime and size each answer brings (auto_inval_data):
   * where nothing else keeps it true, with no change feed to invalidate it (`-o cache=no`, an
   * agent without one). Where the feed does, this would only cost: the kernel holds no mtime of
   * the mount's own writes (it leaves them to the filesystem), so every file written through
   * the mount lost its pages at its next stat, and a read-after-write (git hashing what an untar
   * wrote) read it all again from the mount.
   */
  pageCacheFollowsAttrs: boolean;
  /**
   * Largest write (and read) the kernel sends, at most 1 MiB: what one bus message holds where
   * each write goes as a message of its own (devices); any size where writes are gathered into
   * chunks (files: write-behind.ts).
   */
  maxTransfer: number;
  /**
   * The longest path below the mount, in characters, a request may name: PATH_MAX, or
   * LONG_PATH_MAX to an agent that names longer paths than a system call takes.
   */
  maxPath: number;
}

/** chown(2)'s "keep this id", as MountFs.chown and the protocol take it. */
const UNCHANGED_ID = -1;
const UNKNOWN_INO = 0xffffffff;
/** Where a refused change, sent ahead of the agent's verdict, comes to light (see settle()). */
const SETTLING_OPS = new Set(['flush', 'fsync', 'release', 'getattr']);
const ENOENT = errnoNumber('ENOENT');
const ERANGE = errnoNumber('ERANGE');
const ENODATA = errnoNumber('ENODATA');
const EINVAL = errnoNumber('EINVAL');
/** renameat2's flag, as Linux numbers it. */
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;
const EIO = errnoNumber('EIO');
const ENOSYS = errnoNumber('ENOSYS');
/** The largest read or write the kernel sends (libfuse 3 raises max_pages to fit it). */
export const MAX_TRANSFER = 1 << 20;

/** One kernel operation's entry: its request, who asks, and the name it carries (decoded). */
type OpHandler = (request: FuseRequest, who: FuseCaller, name: string) => void;

/**
 * Attributes in the binding's layout (its `attrSlot` order, `attrSlots` numbers per node). Attr
 * times are whole milliseconds (the second exact) plus the second's nanoseconds.
 */
function packAttr(b: FuseBinding, attr: Attr, into: Float64Array, at = 0): Float64Array {
  const s = b.attrSlot;
  into[at + s.INO] = attr.ino;
  into[at + s.MODE] = attr.mode;
  into[at + s.NLINK] = attr.nlink;
  into[at + s.UID] = USER_IDS.fromMaster(attr.uid);
  into[at + s.GID] = GROUP_IDS.fromMaster(attr.gid);
  into[at + s.RDEV] = attr.rdev;
  into[at + s.SIZE] = attr.size;
  into[at + s.BLOCKS] = attr.blocks;
  into[at + s.BLKSIZE] = attr.blksize;
  into[at + s.ATIME_S] = Math.floor(attr.atimeMs / 1000);
  into[at + s.ATIME_NS] = attr.atimeNsec;
  into[at + s.MTIME_S] = Math.floor(attr.mtimeMs / 1000);
  into[at + s.MTIME_NS] = attr.mtimeNsec;
  into[at + s.CTIME_S] = Math.floor(attr.ctimeMs / 1000);
  into[at + s.CTIME_NS] = attr.ctimeNsec;
  return into;
}

/**
 * Bytes one entry takes in a reply to readdir or readdirplus (<linux/fuse.h>: FUSE_DIRENT_SIZE,
 * FUSE_DIRENTPLUS_SIZE: the fixed part, 24 bytes, after a fuse_entry_out of 128 for plus, then
 * the name, padded to 8).
 */
function direntBytes(plus: boolean, nameLength: number): number {
  // The binding cuts a longer name at NAME_MAX.
  return ((plus ? 152 : 24) + Math.min(nameLength, NAME_MAX) + 7) & ~7;
}

/** A setattr's time: now, unchanged, or seconds and nanoseconds given. */
function timeSpec(toSet: number, given: number, now: number, sec: number, nsec: number): TimeSpec {
  if (toSet & now) return 'now';
  if (!(toSet & given)) return 'omit';
  return { sec, nsec };
}

/** The binding's bytes as a Buffer, without a copy (a write's come as a plain Uint8Array view). */
function bufferOf(data: Uint8Array | undefined): Buffer {
  if (data === undefined) return Buffer.alloc(0);
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

class NoSuchNode extends SlaveError {
  constructor(what: string) {
    super('ENOENT', `${what} is no longer known`);
  }
}

interface OpenDir {
  node: FsNode;
  entries?: DirEntry[];
  /** The cache generation `entries` were fetched at. */
  generation?: number;
}

export class FuseAdapter {
  private readonly binding: FuseBinding;
  private readonly nodes = new NodeTable();
  private readonly dirs = new Map<number, OpenDir>();
  /** Directories removed while open, by node: what fstat of their descriptors gives (nlink 0). */
  private readonly removedDirs = new Map<number, Attr>();
  /** Open file handles by node: a file unlinked while open is reached through one of them. */
  private readonly openFiles = new Map<number, Set<number>>();
  /** Nodes with an open or an attribute change on its way, and how many (afterStore). */
  private readonly opening = new Map<number, number>();
  private nextDir = 1;
  private mounted?: MountHandle;
  private ended?: () => void;
  private readonly endedPromise = new Promise<void>((resolve) => { this.ended = resolve; });
  /** How long the kernel may keep answers, and what it must drop (generations, invalidations, fences). */
  private readonly cache: KernelCache;
  /** The op table (opTable) by the binding's op codes. */
  private readonly byCode: (OpHandler | undefined)[] = [];
  /** The filesystem's reads that answer with its own bytes, when it has them (MountFs.readData). */
  private readonly readData: MountFs['readData'];
  /**
   * One node's attributes for a reply, filled just before each reply call: the binding copies
   * them out within the call, so one array serves all (a fresh one per reply was a malloc'd
   * backing store and a finaliser each, being larger than V8 keeps inside its heap).
   */
  private readonly attrScratch: Float64Array;
  /** All zeros: the attributes of a negative entry. */
  private readonly noAttr: Float64Array;

  constructor(private readonly fs: MountFs, private readonly options: FuseMountOptions, private readonly log: Logger) {
    this.binding = fuseBinding();
    this.attrScratch = new Float64Array(this.binding.attrSlots);
    this.noAttr = new Float64Array(this.binding.attrSlots);
    this.cache = new KernelCache(this.binding, this.nodes, options.mountPath, options.timeouts);
    const table = this.opTable();
    for (const op of OP_NAMES) this.byCode[this.binding.ops[op]] = table[op];
    this.readData = fs.readData?.bind(fs);
  }

  /**
   * New answers are cached this long (the feed of slave changes came or went); `feedLive`: every
   * slave change reaches the mount, so opens keep the kernel's page cache and listings.
   */
  setTimeouts(timeouts: KernelTimeouts, feedLive = false): void {
    this.cache.setTimeouts(timeouts, feedLive);
  }

  get knownNodes(): number {
    return this.nodes.size;
  }

  async mount(): Promise<void> {
    this.mounted = this.binding.mount(
      this.options.mountPath, this.options.kernelOptions.join(','),
      {
        posixAcl: this.options.kernelChecks, writeback: false, maxWrite: Math.min(MAX_TRANSFER, this.options.maxTransfer),
        // Devices come and go with no feed to say so (a restarted board's pty links): never kept.
        cacheSymlinks: !this.options.directIo,
        autoInvalData: this.options.pageCacheFollowsAttrs,
        killPriv: this.fs.dropsSetIdBits === true,
        flock: this.fs.flock !== undefined && this.fs.servesFlock === true,
      },
      (request) => this.dispatch(request),
      (id) => this.cache.fenced(id),
    );
    this.cache.mount = this.mounted;
  }

  /** Detaches the mount; resolves when the kernel has let go (bounded: it may keep open files). */
  async unmount(): Promise<void> {
    if (!this.mounted) return;
    this.binding.unmount(this.mounted);
    const bound = new Promise<void>((resolve) => setTimeout(resolve, 2000).unref());
    await Promise.race([this.endedPromise, bound]);
    // Still held (a process has files open on it): serve what comes, without keeping Node up.
    if (this.mounted) this.binding.ref(this.mounted, false);
  }

  /**
   * `data` is all of the file at `path`, as the slave has it: the kernel may keep it
   * (KernelCache.store), unless an open or an attribute change of it is on its way, which the
   * store could undo (afterStore).
   */
  storeWritten(path: string, data: Buffer): void {
    const node = this.nodes.find(path);
    if (node && !this.opening.has(node.id)) this.cache.store(node, data);
  }

  /**
   * `work` (an open or an attribute change of node `ino`), after the store of the file's data
   * queued for the kernel, if one is on its way: the kernel copies a program's writes into the
   * page cache before it sends them, so a store landing after an open for writing, or after a
   * truncation, would put the older bytes or size back (KernelCache.stored); and a reader then
   * reads what was stored. While it is on its way, and until its answer is out, nothing is
   * stored into the file.
   */
  private afterStore<T>(ino: number, work: () => Promise<T>): () => Promise<T> {
    return async () => {
      this.opening.set(ino, (this.opening.get(ino) ?? 0) + 1);
      try {
        const stored = this.cache.stored(ino);
        if (stored) await stored;
        return await work();
      } finally {
        // After the answer, written in this turn of the event loop.
        setImmediate(() => {
          const left = (this.opening.get(ino) ?? 1) - 1;
          if (left > 0) this.opening.set(ino, left);
          else this.opening.delete(ino);
        });
      }
    };
  }

  /** What the mount told the kernel of `dirPath`/`name` was wrong: drop it before answering on. */
  invalidateStale(dirPath: string, name: string, entry: boolean): void {
    this.cache.invalidateStale(dirPath, name, entry);
  }

  /** The slave changed `name` in directory `dirPath` (null: anything in it). */
  invalidate(dirPath: string, name: string | null, entry: boolean): void {
    this.cache.invalidate(dirPath, name, entry);
    if (!entry || name === null) return;
    const dir = this.nodes.find(dirPath);
    if (dir) this.nodes.otherNameChanged(dir, name);
  }

  /** Everything the kernel holds of the slave may be stale: drop it all. */
  invalidateAll(): void {
    this.cache.invalidateAll();
  }

  /** Resolves once every invalidation asked for so far has reached the kernel. */
  applied(): Promise<void> {
    return this.cache.applied();
  }

  private node(id: number): FsNode {
    const node = this.nodes.get(id);
    if (!node) throw new NoSuchNode(`node ${id}`);
    return node;
  }

  private pathOf(id: number): string {
    const path = this.nodes.pathOf(this.node(id));
    if (path === null) throw new NoSuchNode(`node ${id}'s name`);
    return path;
  }

  /**
   * `op` by the node's path; refused there (EACCES) for a caller other than root, by its other
   * names in turn. A file of several names is one node, named by one of them (NodeTable.pathOf):
   * the caller may have reached it by another while a directory on that one's way is closed to
   * them, and the kernel let it (Linux checks the path the caller named, nothing else). Not found
   * there (ENOENT), by its other names too: someone else removed that name, and the feed said so
   * only for a whole directory or not at all (it was not live); it is dropped once another answered.
   */
  private async byName<T>(id: number, who: FuseCaller, op: (path: string) => Promise<T>): Promise<T> {
    const node = this.node(id);
    const path = this.pathOf(id);
    try {
      return await op(path);
    } catch (err) {
      const errno = errnoOf(err);
      const tryOthers = errno === 'ENOENT' || (errno === 'EACCES' && who.uid !== 0);
      if (!tryOthers || node.links.length < 2) throw err;
      for (const other of this.nodes.otherPaths(node, path)) {
        try {
          const done = await op(other);
          if (errno === 'ENOENT') this.nodes.nameGone(node, path);
          return done;
        } catch (again) {
          if (errnoOf(again) !== errno) throw again;
        }
      }
      throw err;
    }
  }

  private childPath(parentId: number, name: string): string {
    // The kernel passes names up to FUSE's 1,024 bytes; the slave's filesystems take 255. A local
    // filesystem's lookup refuses a longer one as ENAMETOOLONG, and so do we, before a cached
    // listing could answer ENOENT. (A UTF-16 unit takes at most 3 bytes: shorter names pass unmeasured.)
    if (name.length > NAME_MAX / 3 && nameToBytes(name).length > NAME_MAX) {
      throw new SlaveError('ENAMETOOLONG', `a name of ${nameToBytes(name).length} bytes: the longest is ${NAME_MAX}`);
    }
    const path = joinPath(this.pathOf(parentId), name);
    // One longer than a request carries (docs/architecture.md, "Long paths") is the slave's
    // ENAMETOOLONG, not a malformed request.
    const longest = this.options.maxPath;
    if (path.length > longest) throw new SlaveError('ENAMETOOLONG', `a path of ${path.length} characters below the mount: the agent takes at most ${longest}`);
    return path;
  }

  /** Negative errno for logs; positive for the kernel. Errors without one are logged as EIO. */
  private errno(op: string, err: unknown): number {
    const name = errnoOf(err);
    if (!name) this.log.error({ err, op }, 'operation failed without an errno: answering EIO');
    else if (this.log.isLevelEnabled('debug')) this.log.debug({ op, errno: name, msg: (err as Error).message }, 'operation failed');
    return name ? errnoNumber(name) : EIO;
  }

  /** Runs `work`, then answers with `reply`, or with the error's errno: exactly once. */
  private run<T>(handle: RequestHandle, op: string, work: () => Promise<T>, reply: (value: T) => void): void {
    const started = this.log.isLevelEnabled('debug') ? process.hrtime.bigint() : undefined;
    const generation = this.cache.staleNow;
    // Only ops the kernel serves holding no directory or page lock may wait for invalidations:
    // an invalidation can itself wait for such a lock, held until the op is answered.
    if (!SETTLING_OPS.has(op)) {
      work().then((value) => this.answer(handle, op, started, value, reply), (err: unknown) => this.binding.replyErr(handle, this.errno(op, err)));
      return;
    }
    const settled = async () => {
      try {
        const value = await work();
        await this.cache.settle(generation);
        return value;
      } catch (err) {
        await this.cache.settle(generation);
        throw err;
      }
    };
    settled().then((value) => this.answer(handle, op, started, value, reply), (err: unknown) => this.binding.replyErr(handle, this.errno(op, err)));
  }

  private answer<T>(handle: RequestHandle, op: string, started: bigint | undefined, value: T, reply: (value: T) => void): void {
    if (started !== undefined) this.log.debug({ op, micros: Number(process.hrtime.bigint() - started) / 1000 }, 'fuse op');
    try {
      reply(value);
    } catch (err) {
      // Only our own reply code can throw here, before the binding answered.
      this.binding.replyErr(handle, this.errno(op, err));
    }
  }

  private entry(handle: RequestHandle, parentId: number, name: string, attr: Attr, generation = this.cache.now): void {
    const node = this.nodes.looked(this.node(parentId), name, attr);
    const t = this.cache.since(generation, parentId, node.id);
    this.binding.replyEntry(handle, node.id, packAttr(this.binding, attr, this.attrScratch), t.entry, this.attrTimeout(attr, t.attr));
  }

  /** A guess of the filesystem's (a change answered before the slave made it) is not kept. */
  private attrTimeout(attr: Attr, timeout: number): number {
    return this.fs.provisional?.(attr) ? 0 : timeout;
  }

  /** One kernel request: to its op's entry in the table (an op with none answers ENOSYS). */
  private dispatch(request: FuseRequest): void {
    // The kernel refuses a caller its namespace does not map: these ids are always mapped.
    const who: FuseCaller = { uid: USER_IDS.toMaster(request.uid) ?? OVERFLOW_ID, gid: GROUP_IDS.toMaster(request.gid) ?? OVERFLOW_ID, pid: request.pid };
    const name = request.name ? nameFromBytes(request.name) : '';
    try {
      const handler = this.byCode[request.op];
      if (handler) handler(request, who, name);
      else this.binding.replyErr(request.handle, ENOSYS);
    } catch (err) {
      // Thrown before any answer (a node the kernel named is unknown): answer it now.
      if (request.op !== this.binding.ops.FORGET && request.op !== this.binding.ops.DESTROY) {
        this.binding.replyErr(request.handle, this.errno(String(request.op), err));
      }
    }
  }

  /** Answers success with no data. */
  private ok(handle: RequestHandle): () => void {
    return () => void this.binding.replyErr(handle, 0);
  }

  /**
   * One function per kernel operation, by the binding's name for it: the request's arguments
   * by name (FuseRequest), the filesystem's call (MountFs), and the answer.
   */
  private opTable(): Record<OpName, OpHandler> {
    const fs = this.fs;
    const b = this.binding;
    return {
      LOOKUP: ({ handle, ino }, who, name) => this.lookup(handle, ino, name, who),
      FORGET: ({ ino, nlookup }) => this.nodes.forget(ino, nlookup),
      GETATTR: ({ handle, ino, fh }, who) => {
        const generation = this.cache.now;
        this.run(handle, 'getattr', () => this.getattr(ino, fh, who), (attr) => {
          b.replyAttr(handle, packAttr(b, attr, this.attrScratch), this.cache.since(generation, ino).attr);
        });
      },
      SETATTR: ({ handle, ino, fh, setattr }, who) => this.run(handle, 'setattr', this.afterStore(ino, () => this.doubtOnFailure(ino, this.setattr(ino, fh, setattr ?? new Float64Array(0), who))), (attr) => {
        b.replyAttr(handle, packAttr(b, attr, this.attrScratch), this.attrTimeout(attr, this.cache.current.attr));
      }),
      READLINK: ({ handle, ino }, who) => this.run(handle, 'readlink', () => this.byName(ino, who, (path) => fs.readlink(path, who)), (shown) => {
        b.replyReadlink(handle, nameToBytes(shown.target));
        // Dropped once the kernel has it: it is asked again, and checked again, at each use.
        if (!shown.keep) this.cache.forgetInode(ino);
      }),
      MKNOD: ({ handle, ino, mode, rdev }, who, name) => this.run(handle, 'mknod', () => fs.mknod(this.childPath(ino, name), mode, rdev, who), (attr) => this.entry(handle, ino, name, attr)),
      MKDIR: ({ handle, ino, mode }, who, name) => this.run(handle, 'mkdir', () => fs.mkdir(this.childPath(ino, name), mode, who), (attr) => this.entry(handle, ino, name, attr)),
      SYMLINK: ({ handle, ino, data }, who, name) => {
        const target = data ? nameFromBytes(bufferOf(data)) : '';
        this.run(handle, 'symlink', () => fs.symlink(target, this.childPath(ino, name), who), (attr) => this.entry(handle, ino, name, attr));
      },
      LINK: ({ handle, ino, ino2 }, who, name) => this.run(handle, 'link', () => this.byName(ino, who, (path) => fs.link(path, this.childPath(ino2, name), who)), (attr) => {
        const node = this.nodes.linked(this.node(ino), this.node(ino2), name, attr);
        b.replyEntry(handle, node.id, packAttr(b, attr, this.attrScratch), this.cache.current.entry, this.attrTimeout(attr, this.cache.current.attr));
      }),
      UNLINK: ({ handle, ino }, who, name) => this.run(handle, 'unlink', () => {
        const path = this.childPath(ino, name);
        const gone = this.nodes.child(this.node(ino), name);
        return fs.unlink(path, who, gone && gone.links.length > 1 ? this.nodes.otherPaths(gone, path)[0] : undefined);
      }, () => {
        this.nodes.unlinkName(this.node(ino), name);
        this.ok(handle)();
      }),
      RMDIR: ({ handle, ino }, who, name) => {
        const path = this.childPath(ino, name);
        const last = this.lastOfOpenDir(this.nodes.child(this.node(ino), name), path, who);
        this.run(handle, 'rmdir', () => this.withLast(last, () => fs.rmdir(path, who)), ([, attr]) => {
          const removed = this.nodes.unlinkName(this.node(ino), name);
          // Open still (fstat of its descriptor works on a removed directory): what it was, no link left.
          if (removed && attr && this.dirOpen(removed)) this.removedDirs.set(removed.id, { ...attr, nlink: 0 });
          this.ok(handle)();
        });
      },
      RENAME: ({ handle, ino, ino2, name2, flags }, who, name) => {
        // renameat2's RENAME_NOREPLACE and RENAME_EXCHANGE are the agent's to check; RENAME_WHITEOUT
        // (overlayfs's) is not on the wire: EINVAL, as a filesystem without it answers.
        if (flags !== 0 && flags !== RENAME_NOREPLACE && flags !== RENAME_EXCHANGE) return void b.replyErr(handle, EINVAL);
        const newName = name2 ? nameFromBytes(name2) : '';
        const to = this.childPath(ino2, newName);
        if (flags === RENAME_EXCHANGE) {
          this.run(handle, 'rename', () => fs.rename(this.childPath(ino, name), to, who, 'exchange'), () => {
            this.nodes.exchanged(this.node(ino), name, this.node(ino2), newName);
            this.ok(handle)();
          });
          return;
        }
        // A directory renamed over, still open, is removed as by rmdir (see RMDIR).
        const replaced = this.nodes.child(this.node(ino2), newName);
        const last = this.lastOfOpenDir(replaced, to, who);
        this.run(handle, 'rename', () => this.withLast(last, () => fs.rename(this.childPath(ino, name), to, who, flags === RENAME_NOREPLACE ? 'noReplace' : undefined)), ([outcome, attr]) => {
          // Two links to one file (the kernel had them as two nodes): both names stay.
          if (outcome !== 'same') {
            this.nodes.renamed(this.node(ino), name, this.node(ino2), newName);
            if (replaced && attr) this.removedDirs.set(replaced.id, { ...attr, nlink: 0 });
          }
          this.ok(handle)();
        });
      },
      OPEN: ({ handle, ino, flags }, who) => this.run(handle, 'open', this.afterStore(ino, () => this.byName(ino, who, (path) => fs.open(path, flags, who))), (fh) => {
        this.opened(ino, fh);
        const node = this.nodes.get(ino);
        if (!b.replyOpen(handle, fh, this.openFlags(node, flags))) {
          this.untaken(node);
          this.unsentOpen(ino, fh, who, 0);
        }
      }),
      CREATE: ({ handle, ino, flags, mode }, who, name) => this.run(handle, 'create', () => fs.create(this.childPath(ino, name), flags, mode, who), ({ fh, attr }) => {
        const node = this.nodes.looked(this.node(ino), name, attr);
        this.opened(node.id, fh);
        const t = this.cache.current;
        if (!b.replyCreate(handle, node.id, packAttr(b, attr, this.attrScratch), t.entry, this.attrTimeout(attr, t.attr), fh, this.openFlags(node))) {
          this.untaken(node);
          this.unsentOpen(node.id, fh, who, 1);
        }
      }),
      READ: ({ handle, ino, fh, size, offset }, who) => {
        // The kernel keeps what a read brings, across opens too: not if it may predate a change.
        const generation = this.cache.now;
        const node = this.nodes.get(ino);
        const readData = this.readData;
        if (readData) {
          // Answered with the filesystem's bytes where they lie (read-ahead's chunks): no copy.
          return this.run(handle, 'read', () => readData(this.maybePath(ino), fh, size, offset, who), (pieces) => {
            if (node) this.cache.filled(generation, node);
            b.replyIov(handle, pieces);
          });
        }
        const target = Buffer.allocUnsafe(size);
        this.run(handle, 'read', () => fs.read(this.maybePath(ino), fh, target, size, offset, who), (n) => {
          if (node) this.cache.filled(generation, node);
          b.replyBuf(handle, target, n);
        });
      },
      WRITE: ({ handle, ino, fh, data, offset }, who) => {
        // A view of the binding's memory for written data, valid until answered (MountFs.write).
        const bytes = bufferOf(data);
        this.run(handle, 'write', () => this.doubtOnFailure(ino, fs.write(this.maybePath(ino), fh, bytes, bytes.length, offset, who)), (n) => b.replyWrite(handle, n));
      },
      FLUSH: ({ handle, ino, fh }, who) => this.run(handle, 'flush', () => this.doubtOnFailure(ino, fs.flush(this.maybePath(ino), fh, who)), this.ok(handle)),
      RELEASE: ({ handle, ino, fh }, who) => {
        this.closed(ino, fh);
        this.run(handle, 'release', () => this.doubtOnFailure(ino, fs.release(this.maybePath(ino), fh, who)), this.ok(handle));
      },
      FALLOCATE: ({ handle, ino, fh, flags, offset, size }, who) => {
        this.run(handle, 'fallocate', () => this.doubtOnFailure(ino, fs.fallocate(this.maybePath(ino), fh, flags, offset, size, who)), this.ok(handle));
      },
      COPY_FILE_RANGE: ({ handle, ino, fh, offset, ino2, fh2, offset2, size }, who) => {
        const copy = () => fs.copyRange(this.maybePath(ino), fh, offset, this.maybePath(ino2), fh2, offset2, size, who);
        this.run(handle, 'copy_file_range', () => this.doubtOnFailure(ino2, copy()), (n) => b.replyWrite(handle, n));
      },
      FLOCK: ({ handle, ino, fh, flags }, who) => {
        const flock = fs.flock?.bind(fs);
        if (!flock) return void b.replyErr(handle, ENOSYS); // not asked for at mount: the kernel never sends it
        this.run(handle, 'flock', () => flock(this.maybePath(ino), fh, flags, () => b.interrupted(handle), who), this.ok(handle));
      },
      LSEEK: ({ handle, ino, fh, offset, flags }, who) => {
        this.run(handle, 'lseek', () => fs.seekData(this.maybePath(ino), fh, offset, flags, who), (at) => b.replyLseek(handle, at));
      },
      FSYNC: ({ handle, ino, fh, datasync }, who) => this.run(handle, 'fsync', () => this.doubtOnFailure(ino, fs.fsync(this.maybePath(ino), fh, datasync, who)), this.ok(handle)),
      FSYNCDIR: ({ handle, ino, datasync }, who) => {
        // Without fsyncdir the kernel answers a directory's fsync itself, as done.
        const fsyncdir = fs.fsyncdir?.bind(fs);
        if (!fsyncdir) return void b.replyErr(handle, ENOSYS);
        this.run(handle, 'fsyncdir', () => fsyncdir(this.pathOf(ino), datasync, who), this.ok(handle));
      },
      OPENDIR: ({ handle, ino, flags }, who) => this.run(handle, 'opendir', () => this.opendir(ino, flags, who), (dir) => {
        const node = this.nodes.get(ino);
        if (!b.replyOpen(handle, dir, this.dirOpenFlags(node))) {
          this.untaken(node);
          this.dirs.delete(dir);
        }
      }),
      READDIR: (request, who) => this.readdir(request, false, who),
      READDIRPLUS: (request, who) => this.readdir(request, true, who),
      RELEASEDIR: ({ handle, fh }) => {
        const closed = this.dirs.get(fh);
        this.dirs.delete(fh);
        if (closed && !this.dirOpen(closed.node)) this.removedDirs.delete(closed.node.id);
        this.ok(handle)();
      },
      STATFS: ({ handle, ino }, who) => this.run(handle, 'statfs', () => fs.statfs(this.pathOf(ino), who), (s) => {
        b.replyStatfs(handle, Float64Array.of(s.bsize, s.frsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.namemax));
      }),
      ACCESS: ({ handle, ino, mask }, who) => this.run(handle, 'access', () => this.byName(ino, who, (path) => fs.access(path, mask, who)), this.ok(handle)),
      GETXATTR: ({ handle, ino, size }, who, name) => {
        // The kernel's own probes (security.capability before a new file's first write and at an
        // O_TRUNC open, ACLs) mostly ask for what is known absent: answered here and now, with no
        // promise and no error made (they are two of a write 4 KiB + close's six requests).
        const node = this.nodes.get(ino);
        const known = node === undefined ? null : this.nodes.pathOf(node);
        if (known !== null && fs.xattrKnownAbsent?.(known, name, who)) return void b.replyErr(handle, ENODATA);
        this.run(handle, 'getxattr', () => this.byName(ino, who, (path) => fs.getxattr(path, name, who)), (value) => this.replySized(handle, value, size));
      },
      LISTXATTR: ({ handle, ino, size }, who) => this.run(handle, 'listxattr', () => this.byName(ino, who, (path) => fs.listxattr(path, who)), (names) => {
        this.replySized(handle, Buffer.from(names.map((n) => `${n}\0`).join('')), size);
      }),
      SETXATTR: ({ handle, ino, data, flags }, who, name) => {
        const value = bufferOf(data);
        this.run(handle, 'setxattr', () => this.byName(ino, who, (path) => fs.setxattr(path, name, value, flags, who)), this.ok(handle));
      },
      REMOVEXATTR: ({ handle, ino }, who, name) => this.run(handle, 'removexattr', () => this.byName(ino, who, (path) => fs.removexattr(path, name, who)), this.ok(handle)),
      DESTROY: () => this.destroyed(),
      POLL: ({ handle, fh, notify }) => {
        // A filesystem without readiness (files are always ready) says ENOSYS once: the kernel
        // then stops asking and answers poll(2) itself.
        const poll = fs.poll?.bind(fs);
        if (!poll) return void b.replyErr(handle, ENOSYS);
        const mount = this.mounted;
        const wake = notify && mount ? () => b.notifyPoll(mount, fh) : undefined;
        this.run(handle, 'poll', () => poll(fh, wake), (revents) => b.replyPoll(handle, revents));
      },
    };
  }

  private readdir({ handle, ino, fh, size, offset }: FuseRequest, plus: boolean, who: FuseCaller): void {
    const generation = this.cache.now;
    this.run(handle, 'readdir', () => this.listing(fh, offset, who), (entries) => {
      const dir = this.dirs.get(fh);
      // The kernel may keep the listing (cache_readdir): not one that may predate a change.
      if (dir) this.cache.filled(dir.generation ?? generation, dir.node);
      this.replyDir(handle, plus, fh, size, offset, entries, this.cache.since(generation, ino));
    });
  }

  /**
   * The kernel did not take an open or create's answer (its caller was interrupted): it will
   * never release `fh`, so the filesystem's handle is released here, and a create's lookup of
   * the node, which the kernel never got, is undone.
   */
  private unsentOpen(id: number, fh: number, who: FuseCaller, lookups: number): void {
    this.closed(id, fh);
    if (lookups > 0) this.nodes.forget(id, lookups);
    this.fs.release(this.maybePath(id), fh, who).catch((err: unknown) => {
      this.log.debug({ err, fh }, 'release of a handle the kernel never got failed');
    });
  }

  private closed(id: number, fh: number): void {
    const handles = this.openFiles.get(id);
    handles?.delete(fh);
    if (handles?.size === 0) this.openFiles.delete(id);
  }

  /** A path for operations on an open file: null once its names are gone (it is reached by handle). */
  private maybePath(id: number): string | null {
    const node = this.nodes.get(id);
    return node ? this.nodes.pathOf(node) : null;
  }

  private opened(id: number, fh: number): void {
    const handles = this.openFiles.get(id);
    if (handles) handles.add(fh);
    else this.openFiles.set(id, new Set([fh]));
  }

  /**
   * A directory open on the node is fstat'ed with no handle named (the kernel keeps none of a
   * directory's for GETATTR): a caller refused the path (a directory above it closed to them
   * since they opened it) is answered as root, as fstat checks nothing.
   */
  private async dirGetattr(node: FsNode, path: string, who: FuseCaller): Promise<Attr> {
    try {
      return await this.fs.getattr(path, who);
    } catch (err) {
      if (errnoOf(err) !== 'EACCES' || who.uid === 0 || !this.dirOpen(node)) throw err;
      return this.fs.getattr(path, { uid: 0, gid: 0, pid: who.pid });
    }
  }

  /**
   * What a directory about to go (rmdir, or renamed over) is, when a handle is open on it: an
   * fstat of that handle gives it afterwards, with no link left (removedDirs). From the cache;
   * asked first where the cache has it not (`-o cache=no` keeps nothing). Undefined when no
   * handle is open on it, or the asking failed (the removal's own answer then says why).
   */
  private lastOfOpenDir(node: FsNode | undefined, path: string, who: FuseCaller): Attr | Promise<Attr | undefined> | undefined {
    if (!node?.isDir || !this.dirOpen(node)) return undefined;
    return this.fs.lastKnown?.(path) ?? this.fs.getattr(path, who).catch(() => undefined);
  }

  /**
   * `change`'s result and what `last` (lastOfOpenDir) gave; `change` after `last` if that must be
   * asked first, else started in this turn, as every other request is.
   */
  private withLast<T>(last: Attr | Promise<Attr | undefined> | undefined, change: () => Promise<T>): Promise<[T, Attr | undefined]> {
    const changed = (attr: Attr | undefined) => change().then((value): [T, Attr | undefined] => [value, attr]);
    return last instanceof Promise ? last.then(changed) : changed(last);
  }

  /** Whether a directory handle is open on the node. */
  private dirOpen(node: FsNode): boolean {
    for (const dir of this.dirs.values()) if (dir.node === node) return true;
    return false;
  }

  /** A handle open on the node, for asking about a file whose names are gone (fstat after unlink). */
  private anyHandle(id: number): number {
    for (const fh of this.openFiles.get(id) ?? []) return fh;
    return -1;
  }

  /**
   * How the kernel treats an open file: direct I/O, or a page cache kept across opens while the
   * feed is live; and, for an open(2) (`flags`) whose close has nothing to wait for, no flush
   * request at close (a read-only file's: one wakeup and answer of the mount fewer per file
   * `git add`, a compiler or `grep -r` reads).
   */
  private openFlags(node: FsNode | undefined, flags?: number): number {
    const { DIRECT_IO, KEEP_CACHE, NOFLUSH } = this.binding.openFlags;
    const noFlush = flags !== undefined && this.fs.closeWaits?.(flags) === false ? NOFLUSH : 0;
    if (this.options.directIo) return DIRECT_IO | noFlush;
    return (node && this.cache.keepsData(node) ? KEEP_CACHE : 0) | noFlush;
  }

  /**
   * An open directory's listing is kept by the kernel across opens while the feed is live
   * (cache_readdir with keep_cache; the kernel drops it when the directory's mtime moves or it
   * changes it itself). The kernel checks the directory's mtime as it reads such a listing from
   * its start, asking for it if its attributes have expired: only for a directory whose
   * attributes the mount holds now, so that the check never waits for the slave (a directory
   * with changes on their way is listed as without caching).
   */
  private dirOpenFlags(node: FsNode | undefined): number {
    const { CACHE_DIR, KEEP_CACHE } = this.binding.openFlags;
    if (this.options.directIo || !node || !this.cache.keepsData(node)) return 0;
    const path = this.nodes.pathOf(node);
    return path !== null && this.fs.attrSettled?.(path) === true ? CACHE_DIR | KEEP_CACHE : 0;
  }

  /** An open the kernel did not take dropped nothing: a doubt its flags settled stands. */
  private untaken(node: FsNode | undefined): void {
    if (node) this.cache.doubt(node);
  }

  /** A failed write, flush, sync or attribute change leaves what the kernel holds of the file in doubt. */
  private doubtOnFailure<T>(id: number, work: Promise<T>): Promise<T> {
    return work.catch((err: unknown) => {
      const node = this.nodes.get(id);
      if (node) this.cache.doubt(node);
      throw err;
    });
  }

  private lookup(handle: RequestHandle, parentId: number, name: string, who: FuseCaller): void {
    const generation = this.cache.now;
    this.run(handle, 'lookup', async () => {
      try {
        return await this.fs.getattr(this.childPath(parentId, name), who);
      } catch (err) {
        if (errnoOf(err) === 'ENOENT' && !(err instanceof NoSuchNode)) return null;
        throw err;
      }
    }, (attr) => {
      if (attr) return this.entry(handle, parentId, name, attr, generation);
      const negative = this.cache.since(generation, parentId).negative;
      if (negative > 0) {
        this.binding.replyEntry(handle, 0, this.noAttr, negative, 0);
      } else {
        this.binding.replyErr(handle, ENOENT);
      }
    });
  }

  private async getattr(id: number, fhGiven: number, who: FuseCaller): Promise<Attr> {
    const node = this.node(id);
    const path = this.nodes.pathOf(node);
    // The kernel names no handle for fstat (nor for a stat it has already let the caller make):
    // with a file open on the node, it is asked by that handle, which no permission on the path
    // can refuse (fstat needs none).
    const fh = fhGiven >= 0 ? fhGiven : this.anyHandle(id);
    const removed = path === null ? this.removedDirs.get(id) : undefined;
    if (removed) return removed;
    if (fh < 0 && path === null) throw new NoSuchNode(`node ${id}'s name`);
    const attr = fh >= 0 ? await this.fs.fgetattr(path, fh, who) : await this.byName(id, who, (p) => this.dirGetattr(node, p, who));
    // The root is never looked up: its inode number ('.' in listings) comes from here; a node
    // made before the slave answered learns its number here or at its next lookup.
    this.nodes.learnIno(node, attr);
    return attr;
  }

  private async setattr(id: number, fhGiven: number, s: Float64Array, who: FuseCaller): Promise<Attr> {
    const path = this.nodes.pathOf(this.node(id));
    const fh = fhGiven >= 0 || path !== null ? fhGiven : this.anyHandle(id);
    const slot = this.binding.setattrSlot;
    const bit = this.binding.setattrBits;
    const at = (i: number) => s[i] ?? 0;
    const toSet = at(slot.TO_SET);
    // By path: its other names where the first is closed to the caller (byName).
    const named = <T>(op: (path: string) => Promise<T>): Promise<T> => this.byName(id, who, op);
    // The attributes a change answered with, if it did (a guess not waited for): the last one
    // holds the others' changes too. Otherwise the kernel gets what getattr says afterwards.
    let told: Attr | void = undefined;
    if (toSet & bit.MODE) told = await named((p) => this.fs.chmod(p, at(slot.MODE) & 0o7777, who));
    if (toSet & (bit.UID | bit.GID)) {
      const uid = toSet & bit.UID ? USER_IDS.toMaster(at(slot.UID)) ?? OVERFLOW_ID : UNCHANGED_ID;
      const gid = toSet & bit.GID ? GROUP_IDS.toMaster(at(slot.GID)) ?? OVERFLOW_ID : UNCHANGED_ID;
      told = await named((p) => this.fs.chown(p, uid, gid, who));
    }
    if (toSet & bit.SIZE) {
      if (fh >= 0) told = await this.fs.ftruncate(path, fh, at(slot.SIZE), who);
      else told = await named((p) => this.fs.truncate(p, at(slot.SIZE), who));
    }
    if (toSet & (bit.ATIME | bit.MTIME | bit.ATIME_NOW | bit.MTIME_NOW)) {
      const atime = timeSpec(toSet, bit.ATIME, bit.ATIME_NOW, at(slot.ATIME_S), at(slot.ATIME_NS));
      const mtime = timeSpec(toSet, bit.MTIME, bit.MTIME_NOW, at(slot.MTIME_S), at(slot.MTIME_NS));
      told = await named((p) => this.fs.utimens(p, atime, mtime, who));
    }
    if (told) return told;
    // What it is now: by a handle open on it where there is one (the kernel asked nothing of the
    // path's permissions for a change it makes itself, as a write's set-id drop).
    const open = fh >= 0 ? fh : this.anyHandle(id);
    return open >= 0 ? this.fs.fgetattr(path, open, who) : named((p) => this.fs.getattr(p, who));
  }

  private async opendir(id: number, flags: number, who: FuseCaller): Promise<number> {
    const node = this.node(id);
    // Where the kernel does not check permissions, the slave judges whether others may list.
    if (who.uid !== 0 && !this.options.kernelChecks && this.fs.opendir) {
      const path = this.nodes.pathOf(node);
      if (path === null) throw new NoSuchNode(`node ${id}'s name`);
      await this.fs.opendir(path, flags, who);
    }
    const fh = this.nextDir++;
    this.dirs.set(fh, { node });
    return fh;
  }

  /** The open directory's entries ('.' and '..' first); read again when read from the start. */
  private async listing(fh: number, offset: number, who: FuseCaller): Promise<DirEntry[]> {
    const dir = this.dirs.get(fh);
    if (!dir) throw new SlaveError('EBADF', `directory handle ${fh} is not open`);
    if (dir.entries && offset > 0) return dir.entries;
    const path = this.nodes.pathOf(dir.node);
    if (path === null) throw new NoSuchNode(`directory ${dir.node.id}'s name`);
    const generation = this.cache.now;
    const entries = await this.fs.readdir(path, who);
    dir.generation = generation;
    const parent = dir.node.links[0]?.parent ?? dir.node;
    dir.entries = [
      { name: '.', attr: null, ino: dir.node.ino },
      { name: '..', attr: null, ino: parent.ino },
      ...entries,
    ];
    return dir.entries;
  }

  private replyDir(handle: RequestHandle, plus: boolean, fh: number, size: number, offset: number, entries: DirEntry[], t: KernelTimeouts): void {
    const dir = this.dirs.get(fh);
    // Only what fits in the kernel's buffer (`size`, a page or so: some 25 to 150 entries), and
    // one more, which the binding finds does not: a directory is read in as many calls as that
    // takes, and passing all that follows `offset` each time (every name encoded, every node
    // made and forgotten again) cost the square of its size.
    const names: Buffer[] = [];
    for (let i = offset, used = 0; i < entries.length && used <= size; i++) {
      const name = nameToBytes((entries[i] as DirEntry).name);
      names.push(name);
      used += direntBytes(plus, name.length);
    }
    const slice = entries.slice(offset, offset + names.length);
    const slots = this.binding.attrSlots;
    const attrs = new Float64Array(slice.length * slots);
    const ids = new Float64Array(slice.length);
    const offsets = new Float64Array(slice.length);
    const fresh: FsNode[] = [];
    slice.forEach((entry, i) => {
      offsets[i] = offset + i + 1;
      if (entry.attr) {
        packAttr(this.binding, entry.attr, attrs, i * slots);
        if (plus && dir && entry.name !== '.' && entry.name !== '..') {
          const node = this.nodes.looked(dir.node, entry.name, entry.attr, 0);
          ids[i] = node.id;
          fresh[i] = node;
        }
      } else {
        // Without attributes the kernel learns only the type and inode number (d_type, d_ino);
        // an unknown one is libfuse's FUSE_UNKNOWN_INO: glibc's readdir skips entries of inode 0.
        attrs[i * slots + this.binding.attrSlot.INO] = entry.ino || UNKNOWN_INO;
        attrs[i * slots + this.binding.attrSlot.MODE] = entry.name === '.' || entry.name === '..' ? 0o040000 : 0;
      }
    });
    const added = this.binding.replyDir(handle, plus, size, names, attrs, ids, offsets, t.entry, t.attr);
    // The kernel now holds a lookup of each node that went in; the others were never seen.
    fresh.forEach((node, i) => {
      if (i < added) node.lookups++;
      else this.nodes.forget(node.id, 0);
    });
  }

  private replySized(handle: RequestHandle, value: Buffer, size: number): void {
    if (size === 0) this.binding.replyXattrSize(handle, value.length);
    else if (value.length > size) this.binding.replyErr(handle, ERANGE);
    else this.binding.replyBuf(handle, value, value.length);
  }

  private destroyed(): void {
    const mount = this.mounted;
    this.mounted = undefined;
    this.cache.ended();
    if (mount) this.binding.dispose(mount);
    this.ended?.();
  }
}
