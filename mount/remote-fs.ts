/**
 * The slave's filesystem as the FUSE adapter sees it: every kernel operation becomes at most one
 * request to the agent, and many become none (metadata cache, read-ahead, write coalescing).
 */
import { constants } from 'node:fs';
import { posix } from 'node:path';
import type { Logger } from 'pino';
import {
  FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, HandleIds, SEEK_DATA, SEEK_HOLE, MASTER_HANDLE_FIRST, MAY_EXEC, MAY_READ, MAY_WRITE, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, S_ISGID, S_ISUID,
  PATH_MAX, SlaveError, attrFromWire, chmodMode, inGroup, isDir, nameToBytes, owns, permits, readsWith, setAttrTime, timestampOf, type Attr, type Caller,
  type OpName, type OpReply, type OpRequest, type TimeSpec,
} from '../protocol/index.js';
import type { AgentClient } from '../transport/agent-client.js';
import type { AttrCache } from './attr-cache.js';
import { MountFsBase, type DirEntry, type RenameFlag, type Statfs } from './mount-fs.js';
import { OpenFiles, type OpenFile } from './open-files.js';
import { DEFAULT_RENEW_MS, LockRenewal, flockOnSlave } from './flock-wait.js';
import { ReadAhead } from './read-ahead.js';
import { sendByHandle, type Reopened } from './agent-handles.js';
import { CallerGate } from './caller-gate.js';
import type { FuseCaller } from './callers.js';
import { ChunkPool } from './chunk-pool.js';
import type { ShownLink, SymlinkView } from './symlink-view.js';
import { RetainedWrites, type AcknowledgedOwner, type AcknowledgedTimes, type Retained } from './retained-writes.js';
import { Predictions } from './predictions.js';
import { DirListings, type BeingWritten } from './dir-listings.js';
import {
  UnrefusedChanges, chmodChange, chownChange, truncateChange, utimensChange, withoutSetId, type AttrChange,
} from './unrefused-changes.js';
import { WriteBehind, type Cork } from './write-behind.js';
import { WholeFiles, WrittenBudget, WrittenWhole } from './whole-files.js';
import { PROVISIONAL_INO } from './node-table.js';

export interface RemoteFsOptions {
  cache: AttrCache;
  /** Bytes per read-ahead fetch and per coalesced write: as large as one bus message allows. */
  chunkSize: number;
  /** Chunks fetched ahead of a sequential reader. */
  readAheadChunks: number;
  /** Coalesced writes in flight per file; bounds the memory a writer can hold. */
  writesInFlight: number;
  /**
   * Requests the agent cannot refuse (it runs as root and is writable) go out without waiting
   * for their replies (see unrefused-changes.ts).
   */
  pipeline: boolean;
  /** Most bytes written but not yet durable on the slave the mount keeps; past it writers wait. */
  unsyncedMaxBytes: number;
  /** How readlink shows the slave's targets and symlink stores new ones (`-o symlinks`, `-o seen_at`). */
  symlinks: SymlinkView;
  /** Whether the slave's change feed is live now: changes are only predicted while it is. */
  coherent: () => boolean;
  /** The agent's export root (hello.root): its length bounds the paths it can name (predictions.ts). */
  agentRoot: string;
  /** The agent takes file handles the mount names (fs.create's `handle`): creates need not wait. */
  masterHandles: boolean;
  /** Also in fs.open: opens for writing need not wait. */
  masterHandleOpens: boolean;
  /** The agent takes fs.rename's `noReplace` (RENAME_NOREPLACE_CAPABILITY). */
  renameNoReplace?: boolean;
  /** The agent takes fs.rename's `exchange` (RENAME_EXCHANGE_CAPABILITY). */
  renameExchange?: boolean;
  /** The agent names paths longer than a system call takes (LONG_PATHS_CAPABILITY). */
  longPaths?: boolean;
  /** The agent serves fs.flock: flock(2) locks are the slave's, not this master's kernel's. */
  flock?: boolean;
  /** How often the locks held are asked for again (a third of the agent's hello.lockLease). */
  lockRenewMs?: number;
}

/** How often the mount asks the agent what is durable while it keeps unsynced data. */
const COMMIT_POLL_MS = 1000;


const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_DIRECT } = constants;
/** The agent handle of a file open only on the master so far (OpenFile.unopened): never sent. */
const UNOPENED_FH = -1;
const O_ACCMODE = 3; // not in fs.constants
/**
 * Files up to this size come back whole with their open (fs.open's `whole`): most that programs
 * open to read are smaller (sources, configuration, git's objects), and reading one then costs
 * the open's round trip alone. Larger ones are read as before.
 */
const WHOLE_FILE_MAX = 64 * 1024;
/** Files written whole through the mount up to this size are handed to the kernel's page cache (onWrittenWhole). */
const WRITTEN_WHOLE_MAX = 1024 * 1024;
/** What the files being written hold of their runs at once, all together (WrittenBudget). */
const WRITTEN_BUDGET = 64 * 1024 * 1024;

/**
 * The most bytes of whole small files the mount keeps to answer read-only opens with
 * (whole-files.ts): npm's package tree is 10 MB.
 */
const WHOLE_FILES_BUDGET = 64 * 1024 * 1024;

const FILE_CAPABILITIES = 'security.capability';
/**
 * The largest size a truncate by path may grow a file to without waiting for the slave: every
 * filesystem a slave may have takes it (FAT's limit is 4 GiB). Past it, whether the size fits the
 * filesystem (EFBIG) is the slave's to say, at once, as a local truncate would.
 */
const PREDICTED_GROWTH_MAX = 2 ** 31 - 1;
/** The most one copy_file_range asks the agent to copy: a few seconds of a slow disk, below any request's timeout. */
const COPY_MAX = 64 << 20;

function ownerOf(attr: Attr): AcknowledgedOwner {
  return { mode: attr.mode & 0o7777, uid: attr.uid, gid: attr.gid };
}

/** The times of `attr` as a time change takes them. */
function timesOf(attr: Attr): AcknowledgedTimes {
  return {
    atime: { sec: Math.floor(attr.atimeMs / 1000), nsec: attr.atimeNsec },
    mtime: { sec: Math.floor(attr.mtimeMs / 1000), nsec: attr.mtimeNsec },
  };
}

export class RemoteFs extends MountFsBase {
  readonly files = new OpenFiles();
  private readonly cache: AttrCache;
  private readonly unrefused: UnrefusedChanges;
  /** Written data the agent has not reported durable (retained-writes.ts). */
  private readonly retained: RetainedWrites;
  private readonly pool: ChunkPool;
  /** While data is written again to a restarted agent: every request waits for it. */
  private recovering: Promise<void> | undefined;
  private committer: NodeJS.Timeout | undefined;
  /** What the cache may answer each caller, and what the agent will allow them (caller-gate.ts). */
  private readonly gate: CallerGate;
  /** Which changes are answered at once (predictions.ts). */
  private readonly predict: Predictions;
  private readonly listings: DirListings;
  /** Numbers the mount gives the files it creates without waiting (fs.create's `handle`). */
  private readonly named = new HandleIds(MASTER_HANDLE_FIRST);
  /**
   * Moves with every change of file data through the mount: an open whose file came back whole
   * keeps those bytes only if none was made while it was on its way (the agent may have read
   * before or after it; a read after it would have asked, behind it).
   */
  private dataChanges = 0;
  private readonly wholes = new WholeFiles(WHOLE_FILES_BUDGET);
  private readonly writtenBudget = new WrittenBudget(WRITTEN_BUDGET);
  /**
   * Told, at its release, the whole content of a file written from its start to its end through
   * the mount (at most WRITTEN_WHOLE_MAX), acknowledged and unchanged since: the kernel may keep
   * it (the adapter's storeWritten).
   */
  onWrittenWhole?: (path: string, data: Buffer) => void;
  private readonly namedInUse = new Set<number>();
  /** How a file's writes tell the held requests to go (write-behind.ts). */
  private readonly cork: Cork = { uncork: () => this.client.uncork(), soon: () => this.client.sendSoon() };

  constructor(
    private readonly client: AgentClient,
    private readonly options: RemoteFsOptions,
    private readonly log: Logger,
  ) {
    super();
    this.cache = options.cache;
    this.gate = new CallerGate(options.cache);
    this.pool = new ChunkPool(options.chunkSize, Math.ceil(options.unsyncedMaxBytes / options.chunkSize) + 2 * options.writesInFlight);
    this.retained = new RetainedWrites(options.unsyncedMaxBytes, (data) => this.pool.give(data));
    this.locks = new LockRenewal(options.lockRenewMs ?? DEFAULT_RENEW_MS, () => this.lockAgain());
    client.onRestart((boot) => {
      this.recovering ??= this.writeAgain(boot).finally(() => { this.recovering = undefined; });
      void this.locks.now();
    });
    // Changes answered at once are held to travel together; whoever waits for one uncorks.
    this.unrefused = new UnrefusedChanges(options.pipeline, (op, args, caller) => this.call(op, args, caller, true),
      (file, op, args) => this.onFile(file, op, args, true), this.cache, this.files, log,
      (path, attr) => this.retained.acknowledged(path, timesOf(attr), ownerOf(attr)), () => this.client.uncork());
    this.predict = new Predictions(this.unrefused, this.cache, this.gate, options.coherent,
      options.longPaths === true ? Infinity : PATH_MAX - (options.agentRoot === '/' ? 0 : nameToBytes(options.agentRoot).length));
    this.listings = new DirListings(
      this.cache, this.gate, this.unrefused, client, (args, caller) => this.call('fs.readdir', args, caller), options.coherent,
      (dir) => this.sendWritersIn(dir), () => this.beingWritten(),
    );
  }

  /** A request for `caller`: the agent checks and creates as that caller (protocol/caller.ts). */
  /** `hold`: nobody waits for the reply yet, so it may travel with later requests (transport/request-batch.ts). */
  private async call<K extends OpName>(op: K, args: OpRequest<K>, caller?: FuseCaller, hold = false): Promise<OpReply<K>> {
    if (this.recovering) await this.recovering;
    if (caller === undefined) return this.client.call(op, args, { hold });
    try {
      return await this.client.call(op, args, { caller: this.gate.wire(caller), hold });
    } catch (err) {
      const path = (args as { path?: unknown }).path;
      if (err instanceof SlaveError && err.errnoName === 'EACCES' && typeof path === 'string') this.cache.forgetSearchModes(path);
      throw err;
    }
  }

  /**
   * A restarted agent may have lost what it had not made durable: write it again, file by file
   * in the order it was first written, before any other request goes out. The file is created
   * if it is gone (its creation may not have been durable either); a file that cannot be opened
   * loses its data, which is logged.
   */
  private async writeAgain(boot: string): Promise<void> {
    const stale = this.retained.takeStale(boot);
    if (stale.size === 0) return;
    const bytes = [...stale.values()].flatMap((f) => f.entries).reduce((n, e) => n + e.data.length, 0);
    this.log.warn({ files: stale.size, bytes }, 'the agent restarted: writing again what it had not made durable');
    for (const [path, { entries, times, owner }] of stale) {
      // The times to leave it with: those a program was told after its last write, else those
      // the slave has now (its last write's, unless it lost that write too).
      const there = await this.client.call('fs.getattr', { path }).then((r) => attrFromWire(r.attr), () => undefined);
      const keep = times ?? (there && timesOf(there));
      let fh: number;
      try {
        // A file whose creation was lost too is made as the program knew it (root's agent gives
        // it its owner below); the mode is taken as given, the agent's umask being 0.
        fh = (await this.client.call('fs.create', { path, flags: O_WRONLY | O_CREAT, mode: owner?.mode ?? 0o644 })).fh;
        if (!there && owner) {
          await this.client.call('fs.fchown', { fh, uid: owner.uid, gid: owner.gid }).catch((err: unknown) => {
            this.log.warn({ err, path, uid: owner.uid, gid: owner.gid }, 'made again, but not given its owner back');
          });
          await this.client.call('fs.fchmod', { fh, mode: owner.mode }).catch(() => undefined); // chown clears set-id bits
        }
      } catch (err) {
        this.log.error({ err, path, bytes: entries.reduce((n, e) => n + e.data.length, 0) }, 'cannot write again: data lost');
        for (const entry of entries) this.pool.give(entry.data);
        continue;
      }
      const pending = entries.sort((a, b) => a.seq - b.seq);
      try {
        while (pending.length > 0) {
          const entry = pending[0] as Retained;
          const reply = await this.client.call('fs.write', { fh, offset: entry.offset, data: entry.data });
          pending.shift();
          this.keepUnsynced(path, entry.offset, entry.data, reply, owner);
        }
        if (keep) {
          await this.client.call('fs.futimens', { fh, atime: keep.atime, mtime: keep.mtime });
          this.retained.acknowledged(path, keep, owner); // and again, should this agent restart too
        }
      } catch (err) {
        this.log.error({ err, path }, 'writing again failed: data may be lost');
        for (const entry of pending) this.pool.give(entry.data);
      } finally {
        await this.client.call('fs.release', { fh }).catch(() => undefined);
      }
    }
  }

  /** Keeps a write until the agent reports it durable, and lets go of what it reports durable. */
  private keepUnsynced(path: string | null, offset: number, data: Buffer, reply: OpReply<'fs.write'>, owner?: AcknowledgedOwner): void {
    const boot = this.client.bootId ?? '';
    if (path !== null && reply.seq > reply.durable) this.retained.keep(path, { offset, data, boot, seq: reply.seq }, owner);
    else this.pool.give(data);
    this.retained.durable(boot, reply.durable);
    if (this.retained.bytes > 0 && !this.committer) {
      this.committer = setInterval(() => {
        if (this.retained.bytes === 0) {
          clearInterval(this.committer);
          this.committer = undefined;
          return;
        }
        this.commit(false).catch((err: unknown) => this.log.debug({ err }, 'commit poll failed'));
      }, COMMIT_POLL_MS);
      this.committer.unref();
    }
  }

  /** Asks what is durable (force: has the agent make everything durable first). */
  private async commit(force: boolean): Promise<void> {
    const { durable } = await this.call('fs.commit', { force });
    this.retained.durable(this.client.bootId ?? '', durable);
  }

  /**
   * A request by an open file's handle. The handle belongs to one run of the agent; a restarted
   * agent answers ESTALE, and the file is opened again by its current path and flags (without
   * O_CREAT, O_EXCL, O_TRUNC) and the request sent again: programs keep their open files across
   * an agent restart. A file unlinked meanwhile, or gone on the slave, stays ESTALE.
   */
  private async onFile<K extends OpName>(file: OpenFile, op: K, args: (fh: number) => OpRequest<K>, hold = false): Promise<OpReply<K>> {
    if (file.unopened) await this.openLate(file);
    return sendByHandle(file, (fh, boot) => this.client.call(op, args(fh), { handleBoot: boot, hold }),
      () => this.reopen(file), async () => { if (this.recovering) await this.recovering; });
  }

  /**
   * Opens on the agent a file whose open was answered from the content the mount held, now that
   * a request needs its handle; it must still be the file that was opened (else ESTALE, as NFS).
   */
  private openLate(file: OpenFile): Promise<void> {
    file.reopening ??= this.reopen(file, file.attr.ino).then(({ agentFh, agentBoot }) => {
      file.agentFh = agentFh;
      file.agentBoot = agentBoot;
      file.unopened = false;
    }).finally(() => { file.reopening = undefined; });
    return file.reopening;
  }

  /**
   * Files open at `path` only on the master are opened on the agent before the name goes (an
   * unlink, a rename over it): its handle then keeps the file, for fstat and reads after.
   */
  private async openBeforeNameGoes(path: string): Promise<void> {
    await Promise.all([...this.files.at(path)].filter((file) => file.unopened).map((file) => this.openLate(file)));
  }

  /** Opens `file` again by its path (the agent restarted, or it was never opened there: `ino` given). */
  private async reopen(file: OpenFile, ino?: number): Promise<Reopened> {
    const why = ino === undefined ? 'the agent restarted' : 'it was opened';
    if (file.path === null) throw new SlaveError('ESTALE', `the file was unlinked since ${why}`);
    const reply = await this.client.call('fs.open', { path: file.path, flags: file.flags & ~(O_CREAT | O_EXCL | O_TRUNC) })
      .catch((err: unknown) => {
        if (err instanceof SlaveError && err.errnoName === 'ENOENT') {
          throw new SlaveError('ESTALE', `${file.path} is gone from the slave since ${why}`);
        }
        throw err;
      });
    const agentBoot = this.client.bootId ?? '';
    if (ino !== undefined && attrFromWire(reply.attr).ino !== ino) {
      this.client.call('fs.release', { fh: reply.fh }, { handleBoot: agentBoot, hold: true }).catch(() => undefined);
      throw new SlaveError('ESTALE', `${file.path} is another file on the slave since it was opened`);
    }
    if (ino === undefined) this.log.info({ path: file.path, boot: agentBoot }, 'file reopened on the restarted agent');
    return { agentFh: reply.fh, agentBoot };
  }

  /**
   * Data written through any handle of `path`'s file is sent before the caller's request: the
   * agent applies requests in order, so that request sees the data without waiting for a reply.
   * A file with other names (a hard link) is written through those too.
   */
  private async sendWriters(path: string | null, except?: OpenFile): Promise<void> {
    if (path !== null) for (const file of [...this.files.at(path)]) if (file !== except && file.writer?.buffered) await file.writer.send();
    const known = (path === null ? undefined : this.cache.inodeOf(path)) ?? except?.attr;
    if (!known) {
      // Nothing known of the name (`-o cache=no` keeps nothing): any file of several names may be it.
      for (const file of [...this.files.all()]) if (file !== except && file.attr.nlink > 1 && file.writer?.buffered) await file.writer.send();
      return;
    }
    if (isDir(known) || known.ino === PROVISIONAL_INO) return;
    // Its other names: every open file when it has several or none is known, else those whose name went.
    for (const file of [...(known.nlink > 1 || path === null ? this.files.all() : this.files.nameless())]) {
      if (file !== except && (path === null || file.path !== path) && file.attr.ino === known.ino && file.writer?.buffered) await file.writer.send();
    }
  }

  /**
   * Whether a file open for writing whose name went while it kept another (`linkedElsewhere`)
   * is inode `ino`: the cache's attributes of its other names may lag it, and are not used.
   */
  private changedElsewhere(ino: number): boolean {
    for (const file of this.files.nameless()) if (file.linkedElsewhere && file.writer && file.attr.ino === ino) return true;
    return false;
  }

  /** Files open at `path` whose name is about to go while the file keeps another. */
  private losingName(path: string): void {
    for (const file of this.files.at(path)) file.linkedElsewhere = true;
  }

  /** `sendWriters` for the file open as `file` (by its inode number when its name went), its own data last. */
  private async sendFileWriters(file: OpenFile): Promise<void> {
    await this.sendWriters(file.path, file);
    await file.writer?.send();
  }

  /** `sendWriters` for every file open in `dir`. */
  private async sendWritersIn(dir: string): Promise<void> {
    for (const file of [...this.files.all()]) {
      if (file.path !== null && file.writer?.buffered && posix.dirname(file.path) === dir) await file.writer.send();
    }
  }

  /** The open files with data the agent has not answered yet, by name and by inode number. */
  private beingWritten(): BeingWritten {
    const paths = new Set<string>();
    const inodes = new Set<number>();
    for (const file of this.files.all()) {
      if (!file.writer?.dirty) continue;
      if (file.path !== null) paths.add(file.path);
      if (file.attr.ino !== PROVISIONAL_INO) inodes.add(file.attr.ino);
    }
    return { has: (path, ino) => paths.has(path) || inodes.has(ino) };
  }

  /**
   * The slave changed `name` in `dir` (null: anything in it), by the change feed: what open files
   * hold of it read ahead, or as written whole, is old. (The kernel keeps pages across opens while
   * the feed is live: one answered from such a chunk would outlive the change's invalidation.)
   */
  slaveChanged(dir: string, name: string | null): void {
    if (name !== null) {
      this.invalidateReaders(posix.join(dir, name));
      return;
    }
    const prefix = dir === '/' ? '/' : `${dir}/`;
    const paths = new Set<string>();
    for (const file of this.files.all()) if (file.path?.startsWith(prefix)) paths.add(file.path);
    // Once per path: invalidateReaders reaches every file open at it.
    for (const path of paths) this.invalidateReaders(path);
  }

  private invalidateReaders(path: string | null, except?: OpenFile): void {
    this.dataChanges++;
    if (path !== null) this.wholes.drop(path);
    // Written through a name that went, or through one of several links: its other names too.
    if (except && (path === null || except.attr.nlink > 1) && except.attr.ino !== PROVISIONAL_INO) this.wholes.dropInode(except.attr.ino);
    if (path === null) {
      except?.reader.invalidate();
      return;
    }
    for (const file of this.files.at(path)) {
      file.reader.invalidate();
      // Changed by another handle: what this one wrote is not all of it.
      if (file !== except) file.written?.spoil();
    }
    except?.reader.invalidate();
  }

  private remember(path: string, wire: number[]): Attr {
    const attr = attrFromWire(wire);
    this.cache.set(path, attr);
    return attr;
  }

  /** Attributes after a change through `path`: the inode's, whatever its other names. */
  private rememberChange(path: string, wire: number[]): Attr {
    const attr = attrFromWire(wire);
    this.cache.changed(path, attr);
    if (attr.nlink > 1) {
      // Handles open by its other names judge a write's set-id drop by the mode they hold.
      for (const file of this.files.all()) {
        if (file.attr.ino === attr.ino && file.path !== path) file.attr = { ...file.attr, mode: attr.mode, uid: attr.uid, gid: attr.gid };
      }
    }
    this.retained.acknowledged(path, timesOf(attr), ownerOf(attr));
    return attr;
  }

  /**
   * The kernel is about to learn these attributes of `path`: its open files must know the size
   * (see knownSize). getattr and fgetattr are the only ways the kernel learns a size.
   */
  private tell(path: string | null, attr: Attr): Attr {
    if (path !== null) for (const file of this.files.at(path)) file.attr = attr;
    return attr;
  }

  /** The kernel asks nothing before a chown, write or truncate: dropSetIdBits does it here. */
  readonly dropsSetIdBits = true;

  /** The flock locks held through the mount, asked for again while any is (lockAgain). */
  private readonly locks: LockRenewal;

  get servesFlock(): boolean {
    return this.options.flock === true;
  }

  /**
   * flock(2) on the slave (flock-wait.ts), through the file's own agent handle: one open file
   * description of the master's is one of the agent's, as flock(2) needs. After the requests
   * already sent for the file (its open among them, when that was answered at once).
   */
  async flock(_path: string | null, fh: number, op: number, interrupted: () => boolean, _caller: FuseCaller): Promise<void> {
    const file = this.files.get(fh);
    await flockOnSlave(op, async (lock) => {
      await this.onFile(file, 'fs.flock', (h) => ({ fh: h, lock }));
      this.locks.record(file, lock);
    }, interrupted, () => this.files.has(fh));
  }

  /**
   * Each open file's flock lock asked for again (LockRenewal): the agent's lease on it starts
   * again. After the agent restarted, its descriptors went with their locks: the file is opened
   * again and takes its lock again, unless another holder took it meanwhile (as an NFS client
   * reclaims its locks after the server's reboot, with no grace period here), and likewise after
   * its lease ran out while this master was cut off: that is logged, and the program is not told.
   * Returns how many are still held.
   */
  private async lockAgain(): Promise<number> {
    await this.recovering?.catch(() => undefined); // its own failures are logged there
    return LockRenewal.takeAgain([...this.files.all()], (file, lock) => this.onFile(file, 'fs.flock', (h) => ({ fh: h, lock })), (file, lock, err) => {
      if (!this.files.has(file.fh)) return 'released';
      this.log.warn({ err, path: file.path, lock }, 'a flock lock held through the mount was lost (the agent restarted, or its lease ran out) and could not be taken again');
      return 'lost';
    });
  }

  /**
   * Before a write or truncate by `caller` (the kernel leaves it to us: dropsSetIdBits), the
   * set-id bits Linux drops when a caller without CAP_FSETID (here: anyone but root) writes or
   * truncates a file; the agent acts as root, whose writes keep them. Judged by the mode the
   * mount knows (the feed keeps it true), as the kernel judged by its cached one; done at most
   * once per file: afterwards the mode known has none. A file truncated by a path whose mode is
   * not cached (a file of several names never is: attr-cache.ts) is asked about first. chown's
   * drop is the slave's own.
   */
  private async dropSetIdBits(path: string | null, file: OpenFile | undefined, caller: FuseCaller): Promise<void> {
    if (caller.uid === 0) return;
    // The kernel's own act on a write or truncate it let the caller make (who need not own the
    // file, nor search its path any longer): made as root.
    const root: FuseCaller = { uid: 0, gid: 0, pid: caller.pid };
    const attr = (path === null ? undefined : this.cache.lastKnown(path)) ?? file?.attr
      ?? (path === null ? undefined : await this.getattr(path, root));
    if (!attr || (attr.mode & S_IFMT) !== S_IFREG) return;
    const mode = withoutSetId(attr.mode, inGroup(this.gate.wire(caller), attr.gid));
    if (mode === attr.mode) return;
    if (path !== null) {
      await this.chmod(path, mode & 0o7777, root);
      for (const open of this.files.at(path)) if (open.attr.mode !== mode) open.attr = { ...open.attr, mode };
    } else if (file) {
      // Its name went: by its handle.
      await this.sendFileWriters(file);
      file.attr = attrFromWire((await this.onFile(file, 'fs.fchmod', (h) => ({ fh: h, mode: mode & 0o7777 }))).attr);
    }
  }

  provisional(attr: Attr): boolean {
    return this.unrefused.provisional(attr);
  }

  lastKnown(path: string): Attr | undefined {
    return this.cache.lastKnown(path);
  }

  /** As getattr's answer from the cache: nothing pending for the path, its attributes held and sure. */
  attrSettled(path: string): boolean {
    if (this.unrefused.pending(path)) return false;
    const cached = this.cache.lookup(path);
    return cached !== null && cached !== undefined && !this.changedElsewhere(cached.ino);
  }

  /** A change to `path` answered before the slave made it: a getattr waits for the slave's word. */
  private async settledPath(path: string | null): Promise<void> {
    const pending = path === null ? undefined : this.unrefused.pending(path);
    if (!pending) return;
    this.client.uncork();
    await pending;
  }

  /**
   * The barrier: everything written and changed through the mount so far is applied on the
   * slave (fsync, a bridged command before it starts, unmount). Failures stay for their files.
   */
  async settled(): Promise<void> {
    // Waited for, not reported: a failure is the file's own, for its next write, close or fsync.
    await Promise.allSettled([...this.files.all()].map((file) => file.writer?.settled()));
    this.client.uncork();
    await this.unrefused.settled();
  }

  override async getattr(path: string, caller: FuseCaller): Promise<Attr> {
    await this.settledPath(path);
    const cached = path === '/' || this.gate.cacheAnswers(path, caller) ? this.cache.lookup(path) : undefined;
    if (cached === null) throw new SlaveError('ENOENT', `no such file: ${path}`);
    if (cached && !this.changedElsewhere(cached.ino)) return this.tell(path, cached);
    // A name never seen, in a directory not listed: the listing answers it and the names looked up next.
    if (this.cache.kindOf(path) === undefined && await this.listings.listFor(path, caller)) {
      const listed = this.gate.cacheAnswers(path, caller) ? this.cache.lookup(path) : undefined;
      if (listed === null) throw new SlaveError('ENOENT', `no such file: ${path}`);
      if (listed) return this.tell(path, listed);
    }
    await this.sendWriters(path);
    // An answer that crossed a change on the slave may predate it: give it, but do not keep it.
    const [generation, local] = [this.cache.generation, this.cache.local];
    try {
      const { attr } = await this.call('fs.getattr', { path }, caller);
      // Changed since it was asked (on the slave, or through us): the answer is given, not kept.
      const current = this.cache.unchangedSince(path, generation) && this.cache.unchangedHereSince(path, local);
      return this.tell(path, current ? this.remember(path, attr) : attrFromWire(attr));
    } catch (err) {
      if (err instanceof SlaveError && err.errnoName === 'ENOENT' && this.cache.unchangedSince(path, generation)) this.cache.setMissing(path);
      throw err;
    }
  }

  override async fgetattr(path: string | null, fh: number, caller: FuseCaller): Promise<Attr> {
    const file = this.files.get(fh);
    await this.settledPath(path);
    if (path !== null && (file.path === path || !file.linkedElsewhere)) {
      const cached = this.cache.lookup(path);
      if (cached && !this.changedElsewhere(cached.ino)) return this.tell(path, cached);
    }
    if (file.unopened && file.path !== null) {
      // Asked by name rather than opened for it, while the name still is this file.
      const attr = await this.getattr(file.path, caller);
      if (attr.ino === file.attr.ino) return attr;
    }
    await this.sendFileWriters(file);
    const local = this.cache.local;
    const attr = attrFromWire((await this.onFile(file, 'fs.fgetattr', (h) => ({ fh: h }))).attr);
    // Written or changed through us since it was asked: the answer predates that, and is not kept.
    if (file.path !== null && !this.cache.unchangedHereSince(file.path, local)) return attr;
    if (file.path !== null) this.cache.set(file.path, attr);
    file.attr = attr;
    return this.tell(file.path, attr);
  }

  /**
   * Root's access(2) without W_OK is answered from the cache when it knows the name: a missing
   * name is ENOENT, an existing one may be read, and searched or run where it is a directory or
   * has an execute bit (what the slave's kernel grants root). Git asks `access(".git/objects",
   * X_OK)` once per command and far more in `git add`: each was a round trip. W_OK (a read-only
   * export, an immutable file) and every other caller (ACLs) are the agent's to judge.
   */
  override async access(path: string, mode: number, caller: FuseCaller): Promise<void> {
    if (caller.uid === 0 && (mode & MAY_WRITE) === 0) {
      const known = this.cache.lookup(path);
      if (known === null) throw new SlaveError('ENOENT', `no such file: ${path}`);
      const attr = known ?? this.cache.lastKnown(path);
      if (attr !== undefined && ((mode & MAY_EXEC) === 0 || (attr.mode & S_IFMT) === S_IFDIR || (attr.mode & 0o111) !== 0)) return;
    }
    await this.call('fs.access', { path, mode }, caller);
  }

  override async statfs(path: string, caller: FuseCaller): Promise<Statfs> {
    return this.call('fs.statfs', { path }, caller);
  }

  /** Opening a directory needs read permission: from the cache when it says so, else the agent's verdict. */
  async opendir(path: string, _flags: number, caller: FuseCaller): Promise<void> {
    if (this.gate.cacheAnswers(path, caller, MAY_READ)) return;
    await this.call('fs.access', { path, mode: MAY_READ }, caller);
  }

  override async readdir(path: string, caller: FuseCaller): Promise<DirEntry[]> {
    return this.listings.list(path, caller);
  }

  private track(path: string, flags: number, agentFh: number, attr: Attr): OpenFile {
    const writable = (flags & O_ACCMODE) === O_WRONLY || (flags & O_ACCMODE) === O_RDWR;
    const { chunkSize, readAheadChunks, writesInFlight } = this.options;
    return this.files.add((fh) => {
      const file: OpenFile = {
        fh, agentFh, agentBoot: this.client.bootId ?? '', path, flags, attr,
        reader: new ReadAhead(async (offset, length) => {
          const { data } = await this.onFile(file, 'fs.read', (h) => ({ fh: h, offset, length }));
          return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        }, chunkSize, readAheadChunks, () => this.knownSize(file)),
        writer: writable
          ? new WriteBehind(async (offset, data) => {
            // `data` is ours now: kept until durable, sent again if the agent restarts.
            let reply: OpReply<'fs.write'>;
            try {
              // A write that had to wait for room is not held on top: its close may already be
              // waiting without uncorking (write-behind.ts, flush after pipeline()).
              let waited = false;
              while (this.retained.full) {
                await this.commit(true);
                waited = true;
              }
              reply = await this.onFile(file, 'fs.write', (h) => ({ fh: h, offset, data }), !waited);
            } catch (err) {
              this.pool.give(data);
              throw err;
            }
            this.keepUnsynced(file.path, offset, data, reply, ownerOf(file.attr));
          }, chunkSize, writesInFlight, this.pool, this.cork)
          : undefined,
      };
      return file;
    });
  }

  /**
   * The largest size the kernel may believe an open file has: read-ahead fetches nothing past
   * it, and a read past it is the end of the file. Too large costs a request; too small would
   * cut reads short, so every size we hand the kernel for the file updates `file.attr`.
   */
  private knownSize(file: OpenFile): number {
    const cached = file.path === null ? undefined : this.cache.lookup(file.path);
    return Math.max(file.attr.size, cached?.size ?? 0);
  }

  override async open(path: string, flags: number, caller: FuseCaller): Promise<number> {
    const local = this.openFromWhole(path, flags, caller);
    if (local) return local.fh;
    if (flags & O_TRUNC) this.wholes.drop(path);
    const ahead = await this.openAhead(path, flags, caller);
    if (ahead) return ahead.fh;
    await this.sendWriters(path);
    // A small file comes back whole with its open: its first read waits for no trip of its own.
    const reads = readsWith(flags) && (flags & O_TRUNC) === 0;
    const whole = Math.min(WHOLE_FILE_MAX, this.options.chunkSize);
    const [dataChanges, generation] = [this.dataChanges, this.cache.generation];
    const reply = await this.call('fs.open', reads ? { path, flags, whole } : { path, flags }, caller);
    if (flags & O_TRUNC) this.retained.truncated(path, 0);
    const attr = flags & O_TRUNC ? this.rememberChange(path, reply.attr) : this.remember(path, reply.attr);
    const file = this.track(path, flags, reply.fh, attr);
    if (reply.data && dataChanges === this.dataChanges && this.cache.unchangedSince(path, generation)) {
      // A copy: the reply's bytes may be a view of a whole batch's message.
      const data = Buffer.from(reply.data);
      file.reader.seedWhole(data);
      if (data.length === attr.size) this.wholes.keep(path, { data, ino: attr.ino, generation });
    }
    if (flags & O_TRUNC) file.written = new WrittenWhole(WRITTEN_WHOLE_MAX, generation, this.writtenBudget);
    // Linux drops them on open(O_TRUNC) too (the kernel sends that truncation with the open).
    if (flags & O_TRUNC) await this.dropSetIdBits(path, file, caller);
    return file.fh;
  }

  /**
   * A file written whole through the mount, its data acknowledged (at its close and its
   * release): its content answers the next read-only opens, if small (WHOLE_FILE_MAX), and at
   * the release, when nothing can write through the handle any more (a copy of the descriptor
   * may outlive a close), it goes to the kernel's page cache (onWrittenWhole).
   */
  private async keepWritten(file: OpenFile, released: boolean): Promise<void> {
    const { written, path } = file;
    if (!released && written !== undefined && written.size > WHOLE_FILE_MAX) return; // nothing to do before the release
    const data = written?.content();
    if (!written || data === undefined || path === null || file.late) return;
    // Being written through another handle: its content is that handle's to give.
    for (const other of this.files.at(path)) if (other !== file && other.writer) return;
    if (released && !written.inKernel && this.cache.unchangedSince(path, written.generation)) this.onWrittenWhole?.(path, data);
    if (data.length > WHOLE_FILE_MAX) return;
    const kept = { data, ino: file.attr.ino, generation: written.generation };
    this.wholes.keep(path, kept);
    if (kept.ino !== PROVISIONAL_INO) return;
    // Closed before its create was answered (nothing written to wait for): kept unused until its
    // inode number comes with that answer (a change meanwhile drops it). Nobody waits for a release.
    await this.unrefused.pending(path);
    if (file.attr.ino !== PROVISIONAL_INO && !file.late) kept.ino = file.attr.ino;
    else this.wholes.dropIf(path, kept);
  }

  /**
   * An open for writing only of a file the agent will open for the caller (predictions.ts),
   * answered at once with a handle the mount names, as a create: the file's writes follow the
   * open without waiting for it, and a refusal after all reaches its next flush or fsync.
   */
  private async openAhead(path: string, flags: number, caller: FuseCaller): Promise<OpenFile | undefined> {
    if (!this.options.masterHandleOpens || (flags & O_ACCMODE) !== O_WRONLY || (flags & O_DIRECT) !== 0) return undefined;
    const attr = this.predict.writable(path, caller);
    if (!attr) return undefined;
    await this.sendWriters(path);
    const handle = this.named.take((n) => this.namedInUse.has(n));
    this.namedInUse.add(handle);
    const file = this.track(path, flags, handle, flags & O_TRUNC ? { ...attr, size: 0 } : attr);
    if (flags & O_TRUNC) {
      file.written = new WrittenWhole(WRITTEN_WHOLE_MAX, this.cache.generation, this.writtenBudget);
      this.retained.truncated(path, 0);
      this.invalidateReaders(path, file);
      this.cache.unsure(path); // its size and times are the slave's to say
    }
    await this.unrefused.open({ path, flags, handle }, caller, (err) => { file.late = err; });
    if (flags & O_TRUNC) await this.dropSetIdBits(path, file, caller);
    return file;
  }

  /**
   * A read-only open of a file whose whole content the mount holds, answered with no trip when
   * the agent would open it for the caller (predictions.ts): reads come from that content, and
   * the agent opens the file only if a request needs its handle (onFile).
   */
  private openFromWhole(path: string, flags: number, caller: FuseCaller): OpenFile | undefined {
    if ((flags & O_ACCMODE) !== O_RDONLY || (flags & (O_TRUNC | O_DIRECT)) !== 0) return undefined;
    const whole = this.wholes.get(path);
    if (!whole || whole.ino === PROVISIONAL_INO) return undefined;
    if (!this.cache.unchangedSince(path, whole.generation)) {
      this.wholes.drop(path);
      return undefined;
    }
    // Mode and owner last seen, for the caller's permission. A guess's inode number (a file
    // written since its create's reply) is that of the content: every new file at a name
    // through the mount (unlink, rename onto it, O_TRUNC) drops what was kept for the name.
    const attr = this.predict.readable(path, caller);
    if (!attr || (attr.ino !== whole.ino && attr.ino !== PROVISIONAL_INO)) return undefined;
    const file = this.track(path, flags, UNOPENED_FH, { ...attr, ino: whole.ino, size: whole.data.length });
    file.unopened = true;
    file.reader.seedWhole(whole.data);
    return file;
  }

  override async create(path: string, flags: number, mode: number, caller: FuseCaller): Promise<{ fh: number; attr: Attr }> {
    this.wholes.drop(path); // O_CREAT without O_EXCL of an existing file, perhaps with O_TRUNC
    // A new name the agent will make: answered now, with a handle the mount names, so the
    // file's writes follow the create without waiting for it (set-id bits: the agent's to judge).
    if (this.options.masterHandles && (mode & (S_ISUID | S_ISGID)) === 0 && this.predict.newName(path, caller)) {
      const handle = this.named.take((n) => this.namedInUse.has(n));
      this.namedInUse.add(handle);
      const guess = this.predict.newInode(path, S_IFREG | (mode & 0o7777), caller);
      const file = this.track(path, flags, handle, guess);
      file.written = new WrittenWhole(WRITTEN_WHOLE_MAX, this.cache.generation, this.writtenBudget);
      await this.unrefused.make('fs.create', { path, flags, mode, handle }, guess, caller, (real) => {
        // Written to since: the reply predates those writes, so the agent is asked next time.
        const written = guess.size > 0 || file.writer?.dirty === true;
        if (file.attr === guess) file.attr = written ? { ...real, size: Math.max(real.size, guess.size) } : real;
        else if (file.attr.ino === PROVISIONAL_INO) file.attr = { ...file.attr, ino: real.ino }; // written: the rest is still to ask
        return !written;
      }, (err) => { file.late = err; });
      this.cache.setXattrAbsent(path, FILE_CAPABILITIES); // a new file has no capabilities
      return { fh: file.fh, attr: guess };
    }
    const generation = this.cache.generation;
    const reply = await this.call('fs.create', { path, flags, mode }, caller);
    if (flags & O_TRUNC) this.retained.truncated(path, 0);
    const attr = attrFromWire(reply.attr);
    this.cache.added(path, attr);
    this.cache.setXattrAbsent(path, FILE_CAPABILITIES); // a new file has no capabilities
    if (reply.bare) this.cache.setNoXattrs(path);
    const file = this.track(path, flags, reply.fh, attr);
    // Made now, or emptied by O_TRUNC: what it is written with from here is all of it.
    if (attr.size === 0) file.written = new WrittenWhole(WRITTEN_WHOLE_MAX, generation, this.writtenBudget);
    return { fh: file.fh, attr };
  }

  override async read(path: string | null, fh: number, target: Buffer, length: number, offset: number, caller: FuseCaller): Promise<number> {
    let copied = 0;
    for (const piece of await this.readData(path, fh, length, offset, caller)) copied += piece.copy(target, copied);
    return copied;
  }

  /** Views of the read-ahead chunks the bytes lie in (read-ahead.ts). */
  async readData(_path: string | null, fh: number, length: number, offset: number, _caller: FuseCaller): Promise<Buffer[]> {
    const file = this.files.get(fh);
    // Every write made before this read goes before its request. One that comes while we wait
    // (the kernel writing back an mmap'd page while another page of the file is read in) would
    // otherwise reach the agent after it: the read would bring the old bytes, and read-ahead,
    // emptied by that write, would keep them for every read after.
    let changes = -1;
    for (let tries = 0; changes !== this.dataChanges && tries < 4; tries++) {
      changes = this.dataChanges;
      await this.sendWriters(file.path);
      await file.writer?.send();
    }
    // Still written to while we waited (a writer streaming into the file): the read goes on, not
    // held up behind it, and keeps nothing it fetches.
    return file.reader.readData(offset, length, changes === this.dataChanges);
  }

  override async write(_path: string | null, fh: number, data: Buffer, length: number, offset: number, caller: FuseCaller): Promise<number> {
    const file = this.files.get(fh);
    if (!file.writer) throw new SlaveError('EBADF', 'file is not open for writing');
    // What other handles of the file wrote before goes first: each handle buffers its own, and
    // the slave must apply the writes in the order the program made them.
    await this.sendWriters(file.path, file);
    await this.dropSetIdBits(file.path, file, caller);
    await file.writer.write(offset, data, length);
    file.written?.wrote(offset, data.subarray(0, length));
    const end = offset + length;
    // Readers of the file may read up to here (knownSize); a copy, as the object may be cached.
    if (file.attr.size < end) file.attr = { ...file.attr, size: end };
    this.invalidateReaders(file.path, file);
    if (file.path !== null) {
      for (const other of this.files.at(file.path)) if (other.attr.size < end) other.attr = { ...other.attr, size: end };
      // Its size and times are now the slave's to say (stat never shows a guess): a getattr
      // sends the data first and asks the agent, which answers after applying it. Its mode and
      // owner stand: a chmod next is still answered at once (lastKnown).
      this.cache.unsure(file.path, end);
    }
    return length;
  }

  /**
   * A read-only open (without O_TRUNC) writes nothing, is never answered ahead of the agent
   * (openAhead: writers only) and takes no change answered ahead by its handle (those are for
   * handles open for writing: unrefused-changes.ts): its close has nothing to wait for or report.
   */
  closeWaits(flags: number): boolean {
    return (flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0;
  }

  /**
   * close(2) waits for the file's own data only (as NFS and sshfs), and reports what failed of
   * it, or of a change to the file answered before the slave refused it.
   */
  override async flush(_path: string | null, fh: number, _caller: FuseCaller): Promise<void> {
    await this.reportingLate(this.files.get(fh), async (file) => {
      await this.attributesWithData(file);
      await file.writer?.flush();
      // Kept at close, not only at release: the kernel sends the release after close returned,
      // and the program may open the file again first. Not waited for (an empty file closed
      // before its create was answered waits for that answer).
      if (file.written) this.keepWritten(file, false).catch(() => undefined);
    });
  }

  /**
   * A file written since the mount last had its attributes (rsync writes after its fchmod; tar's
   * futimens comes last and brings them) asks for them behind its data at close, in the same
   * message, so that a stat after close needs no trip of its own. Its answer is not waited for.
   */
  private async attributesWithData(file: OpenFile): Promise<void> {
    const { path, writer } = file;
    if (path === null || !writer?.dirty) return;
    const expected = this.cache.unsureAttr(path);
    if (!expected) return;
    const generation = this.cache.generation;
    // A question: failing to ask or to be answered costs the stat a trip, never the close.
    const asked = await writer.after(() => this.onFile(file, 'fs.fgetattr', (h) => ({ fh: h }))).catch(() => undefined);
    asked?.answer.then(({ attr }) => {
      if (this.cache.unchangedSince(path, generation)) this.cache.settle(path, expected, attrFromWire(attr));
    }, () => undefined);
  }

  /**
   * Runs `work` on the file; a refusal of its creation not yet reported is what the program hears
   * (its writes then failed too, with EBADF: the agent never had the handle).
   */
  private async reportingLate(file: OpenFile, work: (file: OpenFile) => Promise<void>): Promise<void> {
    const taken = (): SlaveError | undefined => {
      const late = file.late;
      file.late = undefined;
      return late;
    };
    try {
      await work(file);
    } catch (err) {
      throw taken() ?? err;
    }
    const late = taken();
    if (late) throw late;
  }

  override async fsync(_path: string | null, fh: number, datasync: boolean, _caller: FuseCaller): Promise<void> {
    await this.reportingLate(this.files.get(fh), async (file) => {
      await file.writer?.flush();
      this.client.uncork();
      await this.unrefused.settled(); // the barrier: what the mount answered before is applied
      await file.writer?.flush(); // a pipelined change of the file refused meanwhile is reported here
      const upTo = file.path === null ? 0 : this.retained.lastSeq(file.path);
      await this.onFile(file, 'fs.fsync', (h) => ({ fh: h, datasync }));
      // Everything written through the mount to this file before the fsync is on disk now.
      if (file.path !== null) this.retained.durable(this.client.bootId ?? '', upTo, file.path);
    });
  }

  /**
   * fsync(2) of a directory: the barrier, then the directory synced on the slave; a change in it
   * refused after the mount answered it is reported here, once.
   */
  async fsyncdir(path: string, datasync: boolean, caller: FuseCaller): Promise<void> {
    await this.settled();
    const late = this.unrefused.takeLateInDir(path);
    if (late) throw late;
    const { fh } = await this.call('fs.open', { path, flags: constants.O_RDONLY }, caller);
    try {
      await this.client.call('fs.fsync', { fh, datasync });
    } finally {
      this.client.call('fs.release', { fh }).catch(() => undefined);
    }
  }

  override async release(_path: string | null, fh: number, _caller: FuseCaller): Promise<void> {
    const file = this.files.remove(fh);
    const named = this.namedInUse.has(file.agentFh);
    try {
      await file.writer?.flush();
      await this.keepWritten(file, true);
    } catch (err) {
      // close() already returned this error through flush; nobody is left to tell.
      this.log.warn({ err, path: file.path }, 'write failed after the file was closed');
    }
    file.written?.spoil(); // its run is over: its bytes go back to the budget
    // What it changed under its other names was never cached: those names are asked for next.
    if (file.path === null && file.linkedElsewhere && file.writer && !this.changedElsewhere(file.attr.ino)) this.cache.forgetInode(file.attr.ino);
    if (file.unopened) return; // the agent never had it
    // The kernel does not wait for release; neither do we wait for the agent.
    // A file holding a flock lets go of it now, not with the next batch.
    this.client.call('fs.release', { fh: file.agentFh }, { handleBoot: file.agentBoot, hold: file.flocked === undefined }).then(() => undefined, (err: unknown) => {
      // ESTALE: the agent restarted, and the handle went with it; EBADF for a handle the mount
      // named: its create was refused, and that was reported.
      const errno = err instanceof SlaveError ? err.errnoName : undefined;
      if (errno !== 'ESTALE' && !(named && errno === 'EBADF')) this.log.warn({ err, path: file.path }, 'release failed on the agent');
    }).finally(() => {
      // The name is free again once the agent let go of it.
      if (named) this.namedInUse.delete(file.agentFh);
    });
  }

  override async truncate(path: string, size: number, caller: FuseCaller): Promise<Attr | void> {
    await this.dropSetIdBits(path, undefined, caller);
    const known = this.predict.changeable(path, caller, (who, attr) => (attr.mode & S_IFMT) === S_IFREG && permits(who, attr, MAY_WRITE), false);
    if (known && (size <= known.size || size <= PREDICTED_GROWTH_MAX)) {
      this.retained.truncated(path, size);
      this.invalidateReaders(path);
      return this.unrefused.setattrByPath('fs.truncate', { path, size }, truncateChange(size), known, caller);
    }
    await this.sendWriters(path);
    this.rememberChange(path, (await this.call('fs.truncate', { path, size }, caller)).attr);
    this.retained.truncated(path, size);
    this.invalidateReaders(path);
  }

  /**
   * A change the agent makes to an open file's bytes or size (ftruncate, fallocate, a copy into
   * it): made as by a write (set-id bits dropped: the slave's kernel spares the agent's
   * CAP_FSETID), after every write made before it through any handle, this one's acknowledged;
   * then the file's new attributes are kept, and what was read ahead or written whole of it
   * goes. `retain`: what the change does to the written data kept for a rewrite after a restart.
   */
  private async changeFileData<T extends { attr: number[] }>(
    file: OpenFile, caller: FuseCaller, change: () => Promise<T>, retain: (path: string, reply: T) => void,
  ): Promise<T> {
    await this.dropSetIdBits(file.path, file, caller);
    await this.sendWriters(file.path, file);
    await file.writer?.flush();
    file.written?.spoil();
    const reply = await change();
    if (file.path !== null) {
      this.rememberChange(file.path, reply.attr);
      retain(file.path, reply);
    }
    this.invalidateReaders(file.path, file);
    return reply;
  }

  override async ftruncate(_path: string | null, fh: number, size: number, caller: FuseCaller): Promise<void> {
    const file = this.files.get(fh);
    await this.changeFileData(file, caller, () => this.onFile(file, 'fs.ftruncate', (h) => ({ fh: h, size })), (path) => this.retained.truncated(path, size));
  }

  /**
   * Waits for the agent, as ftruncate does: the slave's filesystem decides what it can do
   * (EOPNOTSUPP), and whether the space is there (ENOSPC), which no cache of ours knows.
   */
  override async fallocate(_path: string | null, fh: number, mode: number, offset: number, length: number, caller: FuseCaller): Promise<void> {
    const file = this.files.get(fh);
    await this.changeFileData(file, caller, () => this.onFile(file, 'fs.fallocate', (h) => ({ fh: h, mode, offset, length })), (path) => {
      // Punched or zeroed: bytes written before are not to come back in a rewrite after a restart.
      if ((mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) !== 0) this.retained.replaced(path, offset, length);
    });
  }

  /**
   * The slave copies, and the bytes never cross the link (cp between two files of the mount):
   * after the writes before it to either file, at most COPY_MAX a call (the caller asks again
   * for the rest, as copy_file_range's callers do).
   */
  override async copyRange(
    _path: string | null, fh: number, offset: number, _pathOut: string | null, fhOut: number, offsetOut: number, length: number, caller: FuseCaller,
  ): Promise<number> {
    const [from, to] = [this.files.get(fh), this.files.get(fhOut)];
    // The source's writes first too: the agent copies what the slave's file holds.
    await this.sendWriters(from.path, from);
    await from.writer?.flush();
    const wanted = Math.min(length, COPY_MAX);
    const copy = async () => {
      if (from.unopened) await this.openLate(from);
      return sendByHandle(from, (source) => this.onFile(to, 'fs.copyrange', (h) => ({
        source, sourceOffset: offset, fh: h, offset: offsetOut, length: wanted,
      })), () => this.reopen(from));
    };
    const { copied } = await this.changeFileData(to, caller, copy, (path, reply) => this.retained.replaced(path, offsetOut, reply.copied));
    return copied;
  }

  /** Asks the slave's file, after the writes before it (held data is not yet where its holes are). */
  override async seekData(_path: string | null, fh: number, offset: number, whence: number): Promise<number> {
    if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new SlaveError('EINVAL', `lseek whence ${whence}`);
    const file = this.files.get(fh);
    await this.sendWriters(file.path, file);
    await file.writer?.flush();
    return (await this.onFile(file, 'fs.lseek', (h) => ({ fh: h, offset, whence }))).offset;
  }

  override async unlink(path: string, caller: FuseCaller, otherName?: string): Promise<void> {
    this.wholes.drop(path);
    // The file keeps `otherName` (the cache says it is the same inode): what this name kept goes there.
    const known = otherName === undefined ? undefined : this.cache.inodeOf(path);
    const keeps = known !== undefined && otherName !== undefined && this.cache.inodeOf(otherName)?.ino === known.ino ? otherName : undefined;
    if (this.predict.change(path) && this.unrefused.mayUnlink(path) && this.gate.predictsRemoval(path, caller)) {
      if (keeps !== undefined) this.retained.movedTo(path, keeps);
      else this.retained.unlinked(path);
      return this.unrefused.unlink(path);
    }
    // Its data first: the reply says what the file is now, for the names it keeps.
    await this.sendWriters(path);
    await this.openBeforeNameGoes(path);
    const { attr } = await this.call('fs.unlink', { path }, caller);
    this.cache.removed(path, false);
    if (attr && keeps !== undefined) {
      // Open files go on by the name left, as after a rename: one opened again on a restarted
      // agent is found there, and so is the data written to it not yet durable.
      this.unrefused.keptName(path, attrFromWire(attr));
      this.files.renamed(path, keeps);
      this.retained.movedTo(path, keeps);
      return;
    }
    if (attr) {
      this.losingName(path);
      this.unrefused.keptName(path, attrFromWire(attr));
    }
    this.files.unlinked(path);
    this.retained.unlinked(path);
  }

  override async rename(from: string, to: string, caller: FuseCaller, flag?: RenameFlag): Promise<void | 'same'> {
    const noReplace = flag === 'noReplace';
    if (noReplace && !this.options.renameNoReplace) throw new SlaveError('EINVAL', `rename ${from}: the agent has no RENAME_NOREPLACE`);
    // Whatever either name (or a directory's files) held has other names now. A file known not
    // to be a directory has nothing below it (nor has `to`: a file cannot replace a directory
    // that holds anything, though it can swap places with one), and rsync renames every file it
    // writes: no scan of all kept files.
    const kind = this.cache.kindOf(from);
    for (const path of [from, to]) {
      this.wholes.drop(path);
      if (kind === undefined || kind === S_IFDIR || flag === 'exchange') this.wholes.dropUnder(path);
    }
    if (flag === 'exchange') return this.exchange(from, to, caller);
    // Whether `to` exists is the slave's to say, atomically, for RENAME_NOREPLACE: never at once.
    if (!noReplace && this.unrefused.mayRename(from, to) && this.predict.rename(from, to, caller)) {
      this.retained.renamed(from, to, false);
      return this.unrefused.rename(from, to, caller);
    }
    await this.sendWriters(from);
    await this.openBeforeNameGoes(to);
    const replaced = this.cache.inodeOf(to);
    const { same } = await this.call('fs.rename', noReplace ? { from, to, noReplace } : { from, to }, caller);
    // Two links to one file: POSIX leaves both names, and nothing else changed.
    if (same) return 'same';
    if (!replaced || replaced.nlink > 1) this.losingName(to);
    this.cache.renamed(from, to);
    this.retained.renamed(from, to);
    this.files.unlinked(to);
    this.files.renamed(from, to);
  }

  /**
   * renameat2's RENAME_EXCHANGE: the two names swap files, atomically, on the slave. Never
   * answered at once (that both exist is the slave's to say), after both files' data; then
   * whatever the mount knew under either name is asked again, and what it holds for either (open
   * files, writes to send again after a restart) follows its file to the other name.
   */
  private async exchange(from: string, to: string, caller: FuseCaller): Promise<void> {
    if (!this.options.renameExchange) throw new SlaveError('EINVAL', `exchange ${from} and ${to}: the agent has no RENAME_EXCHANGE`);
    await this.sendWriters(from);
    await this.sendWriters(to);
    await this.call('fs.rename', { from, to, exchange: true }, caller);
    this.cache.exchanged(from, to);
    this.retained.exchanged(from, to);
    this.files.exchanged(from, to);
  }

  override async link(existing: string, path: string, caller: FuseCaller): Promise<Attr> {
    // Its data first: the reply's attributes (the new name's, kept) are then the file's as written.
    await this.sendWriters(existing);
    // A known file, a name its directory's listing says is free, a caller the agent lets link it
    // (root, or its owner: protected_hardlinks' rules for anyone else are the slave's to apply):
    // answered at once, as git links each object it wrote.
    const source = this.cache.lastKnown(existing);
    if (source && !isDir(source) && (caller.uid === 0 || caller.uid === source.uid)
      && this.predict.change(existing) && this.predict.newName(path, caller)) {
      const guess: Attr = { ...source, nlink: source.nlink + 1 };
      setAttrTime(guess, 'ctime', timestampOf(Date.now()));
      this.cache.changed(existing, guess); // its link count, for every name: asked for next time
      await this.unrefused.make('fs.link', { existing, path }, guess, caller);
      return guess;
    }
    const attr = attrFromWire((await this.call('fs.link', { existing, path }, caller)).attr);
    this.cache.changed(existing, attr); // its link count changed, for every name
    this.cache.added(path, attr);
    return attr;
  }

  override async symlink(target: string, path: string, caller: FuseCaller): Promise<Attr> {
    const stored = this.options.symlinks.stored(target);
    if (this.predict.newName(path, caller)) {
      const guess = this.predict.newInode(path, S_IFLNK | 0o777, caller, nameToBytes(stored).length);
      await this.unrefused.make('fs.symlink', { target: stored, path }, guess, caller);
      return guess;
    }
    const reply = await this.call('fs.symlink', { target: stored, path }, caller);
    const attr = attrFromWire(reply.attr);
    this.cache.added(path, attr);
    if (reply.bare) this.cache.setNoXattrs(path);
    return attr;
  }

  /**
   * A link's size (getattr, listings) stays the slave's, the stored target's length, as sshfs
   * reports it with transform_symlinks: the shown target's would cost a readlink per link in
   * every lstat and listing. Most programs read a link with a buffer that grows (coreutils, GNU
   * tar, rsync, glibc, Python, git) or PATH_MAX; libarchive (bsdtar) reads st_size bytes and cuts
   * a shown target longer than the stored one (docs/architecture.md, known limits).
   */
  override async readlink(path: string, caller: FuseCaller): Promise<ShownLink> {
    const target = async (link: string) => (await this.call('fs.readlink', { path: link }, caller)).target;
    return this.options.symlinks.shown(path, await target(path), {
      attr: (name) => this.getattr(name, caller).catch(() => null),
      target,
    });
  }

  override async mkdir(path: string, mode: number, caller: FuseCaller): Promise<Attr> {
    if (this.predict.newName(path, caller)) {
      const guess = this.predict.newInode(path, S_IFDIR | (mode & 0o7777), caller);
      await this.unrefused.make('fs.mkdir', { path, mode }, guess, caller);
      return guess;
    }
    const reply = await this.call('fs.mkdir', { path, mode }, caller);
    const attr = attrFromWire(reply.attr);
    this.cache.added(path, attr);
    if (reply.bare) this.cache.setNoXattrs(path);
    this.cache.setListing(path, []); // a new directory is empty: lookups in it need no trip
    return attr;
  }

  override async rmdir(path: string, caller: FuseCaller): Promise<void> {
    // Known empty by its cached listing (names made without waiting join it at once), known a
    // directory (its kind: its size and times moved with each name removed from it, which an
    // rmdir does not need), and the caller may remove it: the agent will. So `rm -rf` waits for
    // no rmdir; whoever looks at the slave's disk directly may find the tree still there until
    // the queue is applied, a bridged command or a sync of the mount never does
    // (docs/architecture.md, "Changes answered at once").
    if (path !== '/' && this.cache.kindOf(path) === S_IFDIR && this.predict.change(path) && this.cache.knownEmpty(path)
      && this.gate.predictsRemoval(path, caller)) {
      return this.unrefused.rmdir(path);
    }
    await this.call('fs.rmdir', { path }, caller);
    this.cache.removed(path, true);
  }

  /** chmod, chown, utimens by path: by the open file's handle, or unanswered by path, or waited for. */
  private async changeAttr<K extends 'fs.chmod' | 'fs.chown' | 'fs.utimens'>(
    path: string, caller: FuseCaller, allowed: (who: Caller, attr: Attr) => boolean,
    byHandle: (file: OpenFile) => Promise<Attr>, op: K, args: OpRequest<K> & { path: string }, change: AttrChange,
  ): Promise<Attr | void> {
    const file = this.predict.target(path, caller, allowed);
    if (file) {
      // Other handles' data first: the change's reply then says the size and times they made.
      await this.sendWriters(path, file);
      return byHandle(file);
    }
    await this.sendWriters(path); // sent first, so a write cannot move mtime again
    const known = this.predict.changeable(path, caller, allowed);
    if (known) return this.unrefused.setattrByPath(op, args, change, known, caller);
    this.rememberChange(path, (await this.call(op, args, caller)).attr);
  }

  override chmod(path: string, mode: number, caller: FuseCaller): Promise<Attr | void> {
    // The owner's, unless it sets set-group-ID outside the file's group (the agent clears it).
    return this.changeAttr(path, caller, (who, attr) => owns(who, attr) && chmodMode(who, attr, mode) === mode,
      (file) => this.unrefused.chmod(file, mode), 'fs.chmod', { path, mode }, chmodChange(mode));
  }

  override chown(path: string, uid: number, gid: number, caller: FuseCaller): Promise<Attr | void> {
    return this.changeAttr(path, caller, () => false, (file) => this.unrefused.chown(file, uid, gid),
      'fs.chown', { path, uid, gid }, chownChange(uid, gid));
  }

  override utimens(path: string, atime: TimeSpec, mtime: TimeSpec, caller: FuseCaller): Promise<Attr | void> {
    return this.changeAttr(path, caller, owns, (file) => this.unrefused.utimens(file, atime, mtime),
      'fs.utimens', { path, atime, mtime }, utimensChange(atime, mtime));
  }

  override async mknod(path: string, mode: number, rdev: number, caller: FuseCaller): Promise<Attr> {
    // Waited for, FIFOs too: the agent makes special files with coreutils, asynchronously, so
    // a request sent after one could run before it (docs/protocol.md, Ordering).
    const attr = attrFromWire((await this.call('fs.mknod', { path, mode, rdev }, caller)).attr);
    this.cache.added(path, attr);
    return attr;
  }

  xattrKnownAbsent(path: string, name: string, caller: FuseCaller): boolean {
    // Absent is absent for everyone (whoever's probe found it so), to a caller who may reach
    // the path; but a user.* attribute's reader needs read permission first (EACCES), which only
    // the agent judges. The kernel's own probes are of other names, for every caller: with
    // allow_other, each permission check that refreshes a directory's attributes (after any
    // change in it) drops the ACLs the kernel cached and asks for them again.
    if (caller.uid === 0) return this.cache.isXattrAbsent(path, name);
    return !name.startsWith('user.') && this.cache.isXattrAbsent(path, name) && this.gate.cacheAnswers(path, caller);
  }

  override async getxattr(path: string, name: string, caller: FuseCaller): Promise<Buffer> {
    if (this.xattrKnownAbsent(path, name, caller)) throw new SlaveError('ENODATA', `no attribute ${name} on ${path}`);
    try {
      const { value } = await this.call('fs.getxattr', { path, name }, caller);
      return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    } catch (err) {
      if (err instanceof SlaveError && err.errnoName === 'ENODATA') this.cache.setXattrAbsent(path, name);
      throw err;
    }
  }

  override async setxattr(path: string, name: string, value: Buffer, flags: number, caller: FuseCaller): Promise<void> {
    this.cache.forgetXattrs(path);
    await this.call('fs.setxattr', { path, name, value: Buffer.from(value), flags }, caller);
    this.cache.forgetXattrs(path); // and what a reply to an earlier request said meanwhile (a creation's `bare`)
    this.cache.forget(path); // ctime changed
  }

  override async listxattr(path: string, caller: FuseCaller): Promise<string[]> {
    if (this.cache.hasNoXattrs(path)) return [];
    return (await this.call('fs.listxattr', { path }, caller)).names;
  }

  override async removexattr(path: string, name: string, caller: FuseCaller): Promise<void> {
    this.cache.forgetXattrs(path);
    await this.call('fs.removexattr', { path, name }, caller);
    this.cache.forget(path);
  }
}
