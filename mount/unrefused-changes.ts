/**
 * Changes the agent will not refuse, answered at once and sent on without waiting for their
 * replies, as sshfs sends writes and CephFS's async dirops send creates and unlinks: making a
 * file (with its handle named by the mount, so its writes follow at once), a directory or a
 * symlink where the cached listing says the name is free; removing a file, or a directory known
 * empty; chmod, chown, utimens and truncate, by path or by the handle of a file open for writing
 * (then in the file's write pipeline, after the data written so far). Only when `hello` says the
 * agent is root and writable, the change feed is live, and for root or a caller whom the cached
 * modes allow the change (the agent's own check then agrees unless the slave changed them within
 * the feed's delay). The caller (remote-fs.ts) judges all that; this file keeps the promises.
 *
 * The agent applies one connection's requests in order, so later requests (a lookup, a write by
 * the new handle, a getattr) see each change without waiting for it. What can still fail (a full
 * disk, a quota, a name the slave made at the same moment) reaches the program later: at the
 * next flush or fsync of that file, or fsync of its directory; it is logged with the path and
 * errno and counted, the mount forgets what it knew of the directory and stops predicting in it
 * for a while (docs/architecture.md, "Changes answered at once").
 *
 * Attributes the mount has not had from the agent (a new inode's number, times, a size) are
 * provisional: the kernel gets them with attribute timeout 0, and a getattr of the path waits
 * for the change's reply (`pending`) and answers what the agent said.
 *
 *   tar: create, futimens, fchown, fchmod -> none waited for; close waits for the file's data
 *   rm -rf: unlink per file, rmdir per directory -> none waited for
 *   rsync, git, editors: write a temporary name, close (waits for its data), rename it over the
 *     real one in the same directory -> the rename not waited for
 */
import { posix } from 'node:path';
import type { Logger } from 'pino';
import {
  S_IFDIR, S_IFMT, S_ISGID, S_ISUID, S_IXGRP, SlaveError, attrFromWire, errnoOf, isDir, setAttrTime, timestampOf, type Attr,
  type OpName, type OpReply, type OpRequest, type TimeSpec,
} from '../protocol/index.js';
import { clientMetrics } from '../transport/metrics.js';
import type { AttrCache } from './attr-cache.js';
import type { FuseCaller } from './callers.js';
import type { OpenFile, OpenFiles } from './open-files.js';
import type { WriteBehind } from './write-behind.js';

/** Changes sent and not yet answered, at most; past it the next change waits for room. */
const MAX_UNANSWERED = 256;
/** How long the mount stops predicting in a directory where a change was refused after all. */
const DISTRUST_MS = 10_000;

type HandleSetattr = 'fs.fchmod' | 'fs.fchown' | 'fs.futimens';
type PathSetattr = 'fs.chmod' | 'fs.chown' | 'fs.utimens' | 'fs.truncate';
/** A request, for `caller` where given (the agent checks it and makes new names theirs), else as the agent. */
type Call = <K extends OpName>(op: K, args: OpRequest<K>, caller?: FuseCaller) => Promise<OpReply<K>>;
/** A request by a file's handle, reopened on a restarted agent (remote-fs.ts onFile). */
type FileCall = <K extends OpName>(file: OpenFile, op: K, args: (fh: number) => OpRequest<K>) => Promise<OpReply<K>>;

/** A change to an inode's attributes, applied to a copy of what the mount knows. */
export type AttrChange = (attr: Attr, nowMs: number) => void;

export function chmodChange(mode: number): AttrChange {
  return (attr) => { attr.mode = (attr.mode & S_IFMT) | (mode & 0o7777); };
}

/**
 * The mode without the set-id bits Linux drops from a file on chown (even root's), and on a
 * write or truncate by a caller without CAP_FSETID: set-user-ID always, set-group-ID with group
 * execute, and without it unless `keepsLockingSetGid` (the caller is root, or in the file's
 * group: setattr_should_drop_sgid since Linux 6.2; before, a set-group-ID without group execute
 * marked mandatory locking and always stayed).
 */
export function withoutSetId(mode: number, keepsLockingSetGid: boolean): number {
  const dropsSetGid = (mode & S_IXGRP) !== 0 || !keepsLockingSetGid;
  return mode & ~S_ISUID & (dropsSetGid ? ~S_ISGID : ~0);
}

/** `uid`/`gid` -1: unchanged. */
export function chownChange(uid: number, gid: number): AttrChange {
  return (attr) => {
    if (uid !== -1) attr.uid = uid;
    if (gid !== -1) attr.gid = gid;
    if (!isDir(attr)) attr.mode = withoutSetId(attr.mode, true); // the agent's chown: root's
  };
}

export function utimensChange(atime: TimeSpec, mtime: TimeSpec): AttrChange {
  return (attr, now) => {
    if (atime !== 'omit') setAttrTime(attr, 'atime', timestampOf(atime === 'now' ? now : atime));
    if (mtime !== 'omit') setAttrTime(attr, 'mtime', timestampOf(mtime === 'now' ? now : mtime));
  };
}

export function truncateChange(size: number): AttrChange {
  return (attr, now) => {
    attr.size = size;
    setAttrTime(attr, 'mtime', timestampOf(now));
  };
}

export class UnrefusedChanges {
  /** Every change sent and reported done whose reply has not arrived (the barrier waits for these). */
  private readonly unanswered = new Set<Promise<void>>();
  /** The last unanswered change that made a path or changed its attributes. */
  private readonly byPath = new Map<string, Promise<void>>();
  /** Guessed attributes, never shown to the kernel with a timeout (see `provisional`). */
  private readonly guesses = new WeakSet<Attr>();
  /** Refusals to report at the next fsync of the directory (a created file's own: at its close, see make). */
  private readonly lateDirs = new Map<string, SlaveError>();
  /** Directories where a change was refused after all, until when nothing is predicted in them. */
  private readonly distrusted = new Map<string, number>();

  constructor(
    /** False unless the agent runs as root on a writable export. */
    readonly enabled: boolean,
    private readonly call: Call,
    private readonly onFile: FileCall,
    private readonly cache: AttrCache,
    private readonly files: OpenFiles,
    private readonly log: Logger,
    /** The agent applied a change to `path` and has these attributes (retained-writes.ts keeps the times). */
    private readonly applied: (path: string, attr: Attr) => void = () => undefined,
    /** Sends the requests held to travel together (transport/request-batch.ts): called before waiting for one. */
    private readonly uncork: () => void = () => undefined,
  ) {}

  /** Whether `attr` is a guess of the mount's: the kernel may use it now, but not keep it. */
  provisional(attr: Attr): boolean {
    return this.guesses.has(attr);
  }

  /** A guess, marked as one. */
  guess(attr: Attr): Attr {
    this.guesses.add(attr);
    return attr;
  }

  /** The unanswered change of `path`'s inode, if any: a getattr waits for it. */
  pending(path: string): Promise<void> | undefined {
    return this.byPath.get(path);
  }

  /** Resolves once every change sent so far has been answered (applied or refused). */
  async settled(): Promise<void> {
    while (this.unanswered.size > 0) {
      this.uncork();
      await Promise.allSettled([...this.unanswered]);
    }
  }

  /** Whether changes in `dir` may be predicted: none was refused there lately. */
  trusts(dir: string): boolean {
    const until = this.distrusted.get(dir);
    if (until === undefined) return true;
    if (until > Date.now()) return false;
    this.distrusted.delete(dir);
    return true;
  }

  /** The refusal of a change in directory `dir` not yet reported, taken. */
  takeLateInDir(dir: string): SlaveError | undefined {
    const late = this.lateDirs.get(dir);
    this.lateDirs.delete(dir);
    return late;
  }

  /**
   * A file open for writing at `path` whose handle can carry an attribute change. The caller
   * (remote-fs.ts) also judges that the agent will allow it.
   */
  target(path: string): OpenFile | undefined {
    if (!this.enabled) return undefined;
    for (const file of this.files.at(path)) if (file.writer) return file;
    return undefined;
  }

  chmod(file: OpenFile, mode: number): Promise<Attr> {
    return this.setattr(file, 'fs.fchmod', (fh) => ({ fh, mode }), chmodChange(mode));
  }

  chown(file: OpenFile, uid: number, gid: number): Promise<Attr> {
    return this.setattr(file, 'fs.fchown', (fh) => ({ fh, uid, gid }), chownChange(uid, gid));
  }

  utimens(file: OpenFile, atime: TimeSpec, mtime: TimeSpec): Promise<Attr> {
    return this.setattr(file, 'fs.futimens', (fh) => ({ fh, atime, mtime }), utimensChange(atime, mtime));
  }

  /**
   * The change goes into the file's write pipeline, after the data written so far. The kernel
   * gets the attributes it will give, computed here (provisional). Refused after all, it fails
   * the file's next write, flush or fsync while it is open (close waits for the data only, so a
   * refusal that comes later is its directory's fsync's), and the cache forgets the guess.
   */
  private async setattr<K extends HandleSetattr>(file: OpenFile, op: K, args: (fh: number) => OpRequest<K>, change: AttrChange): Promise<Attr> {
    const writer = file.writer as WriteBehind;
    // What the file is now, as far as the mount knows: its size grown by writes through any handle.
    const cached = file.path === null ? undefined : this.cache.lastKnown(file.path);
    const guess = this.guess({ ...(cached ?? file.attr) });
    const now = Date.now();
    change(guess, now);
    setAttrTime(guess, 'ctime', timestampOf(now));
    file.attr = guess;
    const path = file.path;
    if (path !== null) {
      this.cache.changed(path, guess);
      this.applied(path, guess); // what the program was told, should the agent lose it
    }
    let settle = (): void => undefined;
    const answered = new Promise<void>((resolve) => { settle = resolve; });
    if (path !== null) this.byPath.set(path, answered);
    this.track(answered);
    await writer.pipeline(async () => {
      try {
        const real = attrFromWire((await this.onFile(file, op, args)).attr);
        // Data written since is not on the slave yet: its size stays the larger one.
        if (writer.buffered) real.size = Math.max(real.size, guess.size);
        if (file.attr === guess) file.attr = real;
        if (path !== null) this.answered(path, answered, guess, real);
      } catch (err) {
        if (path !== null) this.refused(op, path, err);
        throw err;
      } finally {
        settle();
      }
    }).catch((err: unknown) => {
      settle(); // refused before it was sent (an earlier failure of the file): not sent at all
      throw err;
    });
    return guess;
  }

  /**
   * chmod, chown, utimens or truncate of a file that is not open for writing, by path: sent after
   * whatever was sent before it. The kernel gets the guess; a getattr waits for the reply.
   */
  setattrByPath<K extends PathSetattr>(
    op: K, args: OpRequest<K> & { path: string }, change: AttrChange, known: Attr, caller: FuseCaller,
  ): Promise<Attr> {
    const guess = this.guess({ ...known });
    const now = Date.now();
    change(guess, now);
    setAttrTime(guess, 'ctime', timestampOf(now));
    this.cache.changed(args.path, guess);
    this.applied(args.path, guess); // what the program was told, should the agent lose it
    return this.sendAhead(op, args, caller, args.path, guess, (reply) => attrFromWire((reply as { attr: number[] }).attr)).then(() => guess);
  }

  /**
   * A new name (fs.create with a handle the mount named, fs.mkdir, fs.symlink) whose
   * directory's cached listing says it is free. The name joins the listing now, with `guess` as
   * its attributes; a getattr waits for the agent's. `made` gets the agent's attributes and says
   * whether they are current; `refused` the refusal, for the file's next flush to report.
   */
  async make<K extends 'fs.create' | 'fs.mkdir' | 'fs.symlink' | 'fs.link'>(
    op: K, args: OpRequest<K> & { path: string }, guess: Attr, caller: FuseCaller,
    made: (real: Attr) => boolean = () => true, refused: (err: SlaveError) => void = () => undefined,
  ): Promise<void> {
    this.guess(guess);
    this.cache.added(args.path, guess);
    if (isDir(guess)) this.cache.setListing(args.path, []); // a new directory is empty: lookups in it need no trip
    await this.sendAhead(op, args, caller, args.path, guess, (reply) => {
      const { attr, bare } = reply as { attr: number[]; bare?: true };
      // No extended attribute at all: ls -l's and the kernel's probes of it are answered here.
      if (bare) this.cache.setNoXattrs(args.path);
      const real = attrFromWire(attr);
      return made(real) ? real : undefined;
    }, false, refused);
  }

  /**
   * An open of a known file with a handle the mount named (fs.open's `handle`): its requests by
   * that handle follow it; `refused` gets a refusal, for the file's next flush to report.
   */
  async open(args: OpRequest<'fs.open'> & { handle: number }, caller: FuseCaller, refused: (err: SlaveError) => void): Promise<void> {
    await this.sendAhead('fs.open', args, caller, args.path, undefined, () => undefined, false, refused);
  }

  /**
   * The name is known to exist and not to be a directory (so not ENOENT, EISDIR) and is not open;
   * the caller (remote-fs.ts) judges that the agent will let whoever asks remove it.
   */
  mayUnlink(path: string): boolean {
    if (!this.enabled) return false;
    const kind = this.cache.kindOf(path);
    if (kind === undefined || kind === S_IFDIR) return false;
    if (this.files.openAt(path)) return false; // open: its handle needs the sync path
    return true;
  }

  /**
   * Refused after all, the name comes back (the cache forgets it) and removing its directory
   * fails with ENOTEMPTY. A name removed on the slave meanwhile is no failure: gone is what was asked.
   */
  async unlink(path: string): Promise<void> {
    this.cache.removed(path, false);
    await this.sendAhead('fs.unlink', { path }, undefined, path, undefined, (reply) => {
      if (reply.attr) this.keptName(path, attrFromWire(reply.attr));
      return undefined;
    }, true);
  }

  /** An unlinked file lives on under another name, with `attr` (the unlink's reply). */
  keptName(path: string, attr: Attr): void {
    this.cache.kept(path, attr, (name) => this.files.openAt(name));
  }

  /**
   * Neither name is open (a handle at either would need the sync path's bookkeeping); the caller
   * (remote-fs.ts, predictions.ts) judges the rest.
   */
  mayRename(from: string, to: string): boolean {
    return this.enabled && !this.files.openAt(from) && !this.files.openAt(to);
  }

  /**
   * A file renamed within its directory: the cache moves it now. The slave gives it a new change
   * time, so what the kernel gets of it is a guess (provisional) until the reply, after which the
   * agent is asked. Refused after all, the directory's listing is forgotten (both names are
   * asked for again) and its next fsync reports the refusal.
   */
  async rename(from: string, to: string, caller: FuseCaller): Promise<void> {
    const moved = this.cache.lastKnown(from);
    this.cache.renamed(from, to);
    let guess: Attr | undefined;
    if (moved) {
      guess = this.guess({ ...moved });
      setAttrTime(guess, 'ctime', timestampOf(Date.now()));
      this.cache.changed(to, guess);
    }
    // Refused, the file is still at `from`, which the cache holds missing: forgotten (the kernel too).
    await this.sendAhead('fs.rename', { from, to }, caller, to, guess, () => undefined, false, () => this.cache.mistaken(from));
  }

  /** A directory the cache knows empty, which nothing unanswered is making anything in. */
  async rmdir(path: string): Promise<void> {
    this.cache.removed(path, true);
    await this.sendAhead('fs.rmdir', { path }, undefined, path, undefined, () => undefined, true);
  }

  /**
   * Sends `op` now; resolves once it is sent (after waiting for room), not answered. The reply's
   * attributes replace `guess` where it is still what the cache holds.
   */
  private async sendAhead<K extends OpName>(
    op: K, args: OpRequest<K>, caller: FuseCaller | undefined, path: string, guess: Attr | undefined,
    attrOf: (reply: OpReply<K>) => Attr | undefined,
    removal = false, refused: (err: SlaveError) => void = () => undefined,
  ): Promise<void> {
    while (this.unanswered.size >= MAX_UNANSWERED) {
      this.uncork();
      await Promise.race(this.unanswered);
    }
    const answered: Promise<void> = this.call(op, args, caller).then(
      (reply) => {
        const real = attrOf(reply);
        if (real && guess) this.answered(path, answered, guess, real);
        else {
          if (this.byPath.get(path) === answered) this.byPath.delete(path);
          // Changed since by what this reply does not know of: the agent is asked next time.
          if (guess) this.cache.replace(path, guess, undefined);
        }
      },
      (err: unknown) => {
        if (this.byPath.get(path) === answered) this.byPath.delete(path);
        // Gone is what removing asked for, whoever removed it.
        if (removal && err instanceof SlaveError && err.errnoName === 'ENOENT') return;
        refused(this.refused(op, path, err));
      },
    );
    if (guess) this.byPath.set(path, answered);
    this.track(answered);
  }

  private track(answered: Promise<void>): void {
    const done = answered.finally(() => { this.unanswered.delete(done); });
    this.unanswered.add(done);
  }

  /** The agent's attributes for a guess: kept where the guess is still what the cache holds. */
  private answered(path: string, answered: Promise<void>, guess: Attr, real: Attr): void {
    // Replies of different requests can finish in any order here: only the reply to the
    // change whose guess is still cached may replace it.
    this.cache.replace(path, guess, real);
    // Only the latest change's reply says what the program was last told (a create's reply can
    // come after a utimens of the file was answered, and must not undo its times).
    if (this.byPath.get(path) !== answered) return;
    this.byPath.delete(path);
    this.applied(path, real);
  }

  /**
   * A change reported done was refused: the program hears of it at the next flush or fsync of
   * the file, or fsync of its directory; the mount forgets what it knew there and waits on that
   * directory for a while.
   */
  private refused(op: OpName, path: string, err: unknown): SlaveError {
    const dir = posix.dirname(path);
    const errno = errnoOf(err) ?? 'EIO';
    const failure = err instanceof SlaveError ? err : new SlaveError(errno, (err as Error).message ?? String(err));
    this.lateDirs.set(dir, failure);
    this.distrusted.set(dir, Date.now() + DISTRUST_MS);
    clientMetrics.lateRefusals.inc({ op, errno });
    this.cache.mistaken(path);
    this.log.warn({ op, path, errno, err: failure.message }, 'a change reported done was refused by the slave: '
      + 'reported at the next fsync or close of the file, or fsync of its directory');
    return failure;
  }
}
