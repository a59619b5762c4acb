/**
 * Durability of written data, as NFSv3's unstable writes and COMMIT: a write is answered once it
 * is in the slave's page cache, with a sequence number; the agent makes data durable in the
 * background (every `intervalMs`, or once `thresholdBytes` are unsynced) by fsyncing every
 * descriptor written since the last commit, and tells masters the highest sequence that is
 * durable. A master keeps what it wrote until then, and writes it again to an agent that comes
 * back with another boot id (mount/retained-writes.ts). Descriptors released while they hold
 * unsynced data stay open until the next commit has synced them (close does not wait for the
 * disk, as on a local filesystem), or until the agent runs a program, which must not find them
 * (unbusy: then the commit is made at once). fsync makes a file's data durable whichever
 * descriptor wrote it, so one descriptor per file is kept for the commit: a program that opens,
 * writes and closes one file 1,000 times between two commits costs one fsync and one held
 * descriptor, not 1,000.
 *
 * Test-only fault switch: with SPLITBRAIN_TEST_DROP_UNSYNCED=<journal file>, every unsynced
 * write is journaled, and an agent starting with the switch set undoes what the journal names
 * (ranges zeroed, files cut back to their size before), as a power cut would have. Never set
 * it on a real slave. The journal, and undoing what it names, are the test's power cut, not the
 * files service: they use node:fs whatever the backend.
 */
import {
  appendFileSync, closeSync, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, renameSync, rmSync, writeSync,
} from 'node:fs';
import type { Logger } from 'pino';
import type { FilesBackend } from '../backends/files-backend.js';
import { fsPath } from '../host-path.js';
import { withTimeout } from '../with-timeout.js';

export const FAULT_ENV = 'SPLITBRAIN_TEST_DROP_UNSYNCED';

/** How long a spawn waits, at most, for the commit that closes the descriptors kept for it (unbusy). */
const UNBUSY_WAIT_MS = 5000;

interface Journaled { path: string; offset: number; length: number; sizeBefore: number }

export class Commits {
  private seq = 0;
  private durableSeq = 0;
  /** Descriptors with unsynced writes, and the host path each was opened at. */
  private readonly dirty = new Map<number, string>();
  /** Released descriptors that close after the next commit. */
  private readonly closeAfterCommit = new Set<number>();
  /** Descriptors the running commit is fsyncing: not closed under it (the number could be reused). */
  private readonly syncing = new Set<number>();
  /** For each file written since the last commit ("dev:ino"), the descriptor whose fsync syncs it. */
  private readonly keeper = new Map<string, number>();
  private readonly inodeOf = new Map<number, string>();
  private dirtyBytes = 0;
  private running: Promise<number> | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly journal = process.env[FAULT_ENV] || undefined;

  constructor(
    /** Where written descriptors are synced and closed: the agent's files backend. */
    private readonly files: Pick<FilesBackend, 'fsync' | 'close'>,
    intervalMs: number, private readonly thresholdBytes: number, private readonly log: Logger,
  ) {
    this.timer = setInterval(() => { if (this.dirty.size > 0) void this.commit(); }, intervalMs);
    this.timer.unref();
  }

  /** The highest write sequence known durable. */
  get durable(): number {
    return this.durableSeq;
  }

  /** True with the fault switch: writes need their path and prior size (see wrote). */
  get journaling(): boolean {
    return this.journal !== undefined;
  }

  /**
   * Notes a write of `length` bytes at `offset` on `fd`; returns its sequence number. With the
   * fault switch, `before` gives the host path and the size before the write. `inode` ("dev:ino")
   * names the file, so that its other descriptors can close at their release (release).
   */
  wrote(fd: number, offset: number, length: number, before?: { hostPath: string; size: number }, inode?: string): number {
    this.dirty.set(fd, before?.hostPath ?? '');
    if (inode !== undefined) this.inodeOf.set(fd, inode);
    this.keepIfFirst(fd);
    this.dirtyBytes += length;
    if (this.journal && before) {
      const entry: Journaled = { path: before.hostPath, offset, length, sizeBefore: before.size };
      appendFileSync(this.journal, `${JSON.stringify(entry)}\n`);
    }
    if (this.dirtyBytes >= this.thresholdBytes) void this.commit();
    return ++this.seq;
  }

  /** Closes `fd` now, or after the next commit when it holds unsynced data. */
  async release(fd: number): Promise<void> {
    if (this.syncing.has(fd)) {
      this.closeAfterCommit.add(fd);
      return;
    }
    if (this.dirty.has(fd)) {
      if (this.keeperOf(fd) === fd) {
        this.closeAfterCommit.add(fd);
        return;
      }
      // Another descriptor of the file stays for the commit: its fsync syncs what fd wrote too.
      this.dirty.delete(fd);
    }
    this.forget(fd);
    await this.files.close(fd);
  }

  /**
   * Before the agent runs a program: it keeps no descriptor of a file masters closed. A program
   * would trip over one: run from a file open for writing, it fails with ETXTBSY (a script the
   * master wrote and closed just before asking to run it); an unmount of the filesystem holding
   * the file fails with EBUSY (a storage test fills a volume and unmounts it); fuser and lsof name
   * the agent. So when descriptors wait for the next commit, it is made now, and the spawn waits
   * for it: the files written since the last commit are synced (as NFS's close does for each
   * file) and the kept descriptors closed. At most `maxWaitMs`: a disk that hangs must not hold
   * up a spawn for ever. Closed here without a sync instead, a filesystem sync later held a
   * directory of the volume open while the spawned umount ran (EBUSY again); reopened read-only
   * at each release, the write 4 KiB + close loop of fresh files cost the agent 100-290 µs more
   * per call.
   */
  async unbusy(maxWaitMs = UNBUSY_WAIT_MS): Promise<void> {
    if (this.closeAfterCommit.size === 0) return;
    await withTimeout(this.commit().catch(() => undefined), maxWaitMs); // what failed is logged, and kept for the next
  }

  /** The dirty descriptor the next commit fsyncs for `fd`'s file (`fd` itself when its inode is unknown). */
  private keeperOf(fd: number): number {
    const inode = this.inodeOf.get(fd);
    const keeper = inode === undefined ? undefined : this.keeper.get(inode);
    return keeper !== undefined && this.dirty.has(keeper) ? keeper : fd;
  }

  /** Makes dirty `fd` its file's keeper unless another dirty descriptor of the file is already. */
  private keepIfFirst(fd: number): void {
    const inode = this.inodeOf.get(fd);
    if (inode !== undefined && this.keeperOf(fd) === fd) this.keeper.set(inode, fd);
  }

  private forget(fd: number): void {
    const inode = this.inodeOf.get(fd);
    if (inode === undefined) return;
    this.inodeOf.delete(fd);
    if (this.keeper.get(inode) === fd) this.keeper.delete(inode);
  }

  /** Makes every write answered so far durable; resolves with the durable sequence. */
  async commit(): Promise<number> {
    while (this.running) await this.running;
    if (this.dirty.size === 0 && this.durableSeq === this.seq) return this.durableSeq;
    this.running = this.sync().finally(() => { this.running = undefined; });
    return this.running;
  }

  private async sync(): Promise<number> {
    const upTo = this.seq;
    const snapshot = new Map(this.dirty);
    const fds = [...snapshot.keys()];
    for (const fd of fds) this.syncing.add(fd);
    this.dirty.clear();
    this.keeper.clear();
    this.dirtyBytes = 0;
    // Writes after this point journal to a new file; this commit's journal goes once it is synced.
    const committing = this.journal ? `${this.journal}.committing` : undefined;
    if (this.journal && committing && existsSync(this.journal)) {
      // A failed commit's journal is still there: this one's entries join it.
      if (existsSync(committing)) {
        appendFileSync(committing, readFileSync(this.journal));
        rmSync(this.journal);
      } else {
        renameSync(this.journal, committing);
      }
    }
    const started = Date.now();
    const results = await Promise.allSettled(fds.map((fd) => this.files.fsync(fd)));
    let failed = false;
    for (const [i, result] of results.entries()) {
      if (result.status === 'fulfilled') continue;
      // Not durable: tried again at the next commit, and masters keep the data meanwhile.
      failed = true;
      const fd = fds[i] as number;
      this.dirty.set(fd, snapshot.get(fd) ?? '');
      this.keepIfFirst(fd);
      this.log.error({ err: result.reason, fd }, 'fsync failed: the data is not durable yet');
    }
    if (committing && !failed) rmSync(committing, { force: true });
    if (!failed) this.durableSeq = Math.max(this.durableSeq, upTo);
    this.syncing.clear();
    const closing: Promise<void>[] = [];
    for (const fd of fds) {
      // Written again since the snapshot: it closes after the commit that syncs that.
      if (this.dirty.has(fd)) continue;
      if (this.closeAfterCommit.delete(fd)) {
        this.forget(fd);
        closing.push(this.files.close(fd).catch(() => undefined));
      }
    }
    // All handed to the thread pool at once: one after the other, each close was a round trip
    // between the threads (two wakeups), a thousand per commit behind a loop of small writes.
    await Promise.all(closing);
    this.log.debug({ files: fds.length, durable: upTo, ms: Date.now() - started }, 'commit');
    return upTo;
  }

  /** Commits what is left and closes what waits for it (agent shutdown). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.commit().catch(() => undefined);
  }
}

/** Undoes the writes a previous run journaled as unsynced (the test-only fault switch). */
export function dropUnsyncedWrites(log: Logger): void {
  const journal = process.env[FAULT_ENV];
  if (!journal) return;
  const lines = [`${journal}.committing`, journal].flatMap((file) => {
    try {
      return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    } catch {
      return [];
    }
  });
  if (lines.length === 0) return;
  const byPath = new Map<string, Journaled[]>();
  for (const line of lines) {
    const entry = JSON.parse(line) as Journaled;
    byPath.set(entry.path, [...(byPath.get(entry.path) ?? []), entry]);
  }
  for (const [path, entries] of byPath) {
    try {
      const before = Math.min(...entries.map((e) => e.sizeBefore));
      const fd = openSync(fsPath(path), 'r+');
      try {
        for (const e of entries) {
          const end = Math.min(e.offset + e.length, before);
          if (end > e.offset) writeSync(fd, Buffer.alloc(end - e.offset), 0, end - e.offset, e.offset);
        }
        if (fstatSync(fd).size > before) ftruncateSync(fd, before);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      log.warn({ err, path }, 'fault switch: could not undo unsynced writes');
    }
  }
  rmSync(journal, { force: true });
  rmSync(`${journal}.committing`, { force: true });
  log.warn({ files: byPath.size, journal }, `fault switch ${FAULT_ENV}: dropped the previous run's unsynced writes (test only)`);
}
