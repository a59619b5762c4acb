/**
 * Changes a root agent will not refuse, sent without waiting for their replies: chmod, chown and
 * utimens of a file open for writing (by its handle, in the file's write pipeline) and unlinks
 * of files the cache knows. Only when `hello` says the agent is root and writable, and only
 * for root, or for a caller whom the cached modes allow the change (the agent's own check then
 * agrees unless the slave changed them within the cache's lifetime): then EPERM, EACCES and
 * ENOENT do not happen, and what still can (an immutable or append-only file, a failing disk,
 * modes changed behind our back) reaches the program later, as a failed asynchronous write does
 * on NFS.
 *
 *   tar: futimens, fchown, fchmod, close  -> one round trip (the close) instead of four
 *   rm -rf: unlink per file                -> none per file
 */
import type { Logger } from 'pino';
import {
  S_IFMT, S_ISGID, S_ISUID, S_IXGRP, SlaveError, attrFromWire, isDir, setAttrTime, timestampOf, type Attr, type OpName,
  type OpReply, type OpRequest, type TimeSpec,
} from '../protocol/index.js';
import type { AttrCache } from './attr-cache.js';
import type { OpenFile, OpenFiles } from './open-files.js';
import type { WriteBehind } from './write-behind.js';

/** Pipelined unlinks in flight at most; past it the next unlink waits for room. */
const MAX_PIPELINED_UNLINKS = 64;

type HandleSetattr = 'fs.fchmod' | 'fs.fchown' | 'fs.futimens';
type Call = <K extends OpName>(op: K, args: OpRequest<K>) => Promise<OpReply<K>>;
/** A request by a file's handle, reopened on a restarted agent (remote-fs.ts onFile). */
type FileCall = <K extends OpName>(file: OpenFile, op: K, args: (fh: number) => OpRequest<K>) => Promise<OpReply<K>>;

export class UnrefusedChanges {
  /** Unlinks sent and reported done, whose replies have not arrived. */
  private readonly unlinks = new Set<Promise<void>>();

  constructor(
    /** False unless the agent runs as root on a writable export. */
    private readonly enabled: boolean,
    private readonly call: Call,
    private readonly onFile: FileCall,
    private readonly cache: AttrCache,
    private readonly files: OpenFiles,
    private readonly log: Logger,
    /** The agent applied a change to `path` and has these attributes (retained-writes.ts keeps the times). */
    private readonly applied: (path: string, attr: Attr) => void = () => undefined,
  ) {}

  /**
   * A file open for writing at `path` whose handle can carry an attribute change. The caller
   * (remote-fs.ts) also judges that the agent will allow it: root's always; another caller's
   * when the cached attributes say so, as the agent would judge them.
   */
  target(path: string): OpenFile | undefined {
    if (!this.enabled) return undefined;
    for (const file of this.files.at(path)) if (file.writer) return file;
    return undefined;
  }

  chmod(file: OpenFile, mode: number): Promise<void> {
    return this.setattr(file, 'fs.fchmod', (fh) => ({ fh, mode }), (attr) => {
      attr.mode = (attr.mode & S_IFMT) | (mode & 0o7777);
    });
  }

  /** `uid`/`gid` -1: unchanged. */
  chown(file: OpenFile, uid: number, gid: number): Promise<void> {
    return this.setattr(file, 'fs.fchown', (fh) => ({ fh, uid, gid }), (attr) => {
      if (uid !== -1) attr.uid = uid;
      if (gid !== -1) attr.gid = gid;
      // Linux drops set-user-ID, and set-group-ID with group execute, on chown, even root's.
      if (!isDir(attr)) {
        attr.mode &= ~S_ISUID;
        if (attr.mode & S_IXGRP) attr.mode &= ~S_ISGID;
      }
    });
  }

  utimens(file: OpenFile, atime: TimeSpec, mtime: TimeSpec): Promise<void> {
    return this.setattr(file, 'fs.futimens', (fh) => ({ fh, atime, mtime }), (attr, now) => {
      if (atime !== 'omit') setAttrTime(attr, 'atime', timestampOf(atime === 'now' ? now : atime));
      if (mtime !== 'omit') setAttrTime(attr, 'mtime', timestampOf(mtime === 'now' ? now : mtime));
    });
  }

  /**
   * The change goes into the file's write pipeline, after the data written so far. The kernel
   * gets the attributes it will give, computed here, and later requests see it, since the agent
   * applies one connection's requests in order. Refused after all, it fails the file's next
   * write, flush or fsync (so `close` returns the error), and the cache forgets the guess.
   */
  private async setattr<K extends HandleSetattr>(
    file: OpenFile, op: K, args: (fh: number) => OpRequest<K>, change: (attr: Attr, nowMs: number) => void,
  ): Promise<void> {
    const writer = file.writer as WriteBehind;
    const cached = file.path === null ? undefined : this.cache.lookup(file.path);
    const guess: Attr = { ...(cached || file.attr) };
    const now = Date.now();
    change(guess, now);
    guess.ctimeMs = now;
    file.attr = guess;
    if (file.path !== null) this.cache.changed(file.path, guess);
    await writer.pipeline(async () => {
      try {
        const real = attrFromWire((await this.onFile(file, op, args)).attr);
        // Data written since is not on the slave yet: its size stays the larger one.
        if (writer.buffered) real.size = Math.max(real.size, guess.size);
        // Replies of different requests can finish in any order here: only the reply to the
        // change whose guess is still cached may replace it.
        if (file.path !== null) this.cache.replace(file.path, guess, real);
        // After the reply to every write before it (one connection's replies come in order).
        if (file.path !== null) this.applied(file.path, real);
      } catch (err) {
        if (file.path !== null) this.cache.forget(file.path);
        this.log.warn({ err, op, path: file.path }, 'attribute change refused after it was reported done');
        throw err;
      }
    });
  }

  /**
   * The name is known to exist and not to be a directory (so not ENOENT, EISDIR) and is not open;
   * the caller (remote-fs.ts) judges that the agent will let whoever asks remove it.
   */
  mayUnlink(path: string): boolean {
    if (!this.enabled) return false;
    const attr = this.cache.lookup(path);
    if (!attr || isDir(attr)) return false;
    for (const _file of this.files.at(path)) return false; // open: its handle needs the sync path
    return true;
  }

  /**
   * Refused after all, the name comes back (the cache forgets it), the failure is logged, and
   * removing its directory fails with ENOTEMPTY. A name removed on the slave meanwhile is no
   * failure: gone is what was asked.
   */
  async unlink(path: string): Promise<void> {
    while (this.unlinks.size >= MAX_PIPELINED_UNLINKS) await Promise.race(this.unlinks);
    const done: Promise<void> = this.call('fs.unlink', { path }).then(
      () => { this.unlinks.delete(done); },
      (err: unknown) => {
        this.unlinks.delete(done);
        if (err instanceof SlaveError && err.errnoName === 'ENOENT') return;
        this.cache.reappeared(path);
        this.log.warn({ err, path }, 'unlink refused after it was reported done: the file is still there');
      },
    );
    this.unlinks.add(done);
    this.cache.removed(path, false);
  }
}
