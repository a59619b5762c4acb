/**
 * The mount's open files, by the handle number the kernel holds. Each keeps what is needed to
 * open it again on a restarted agent: its current slave path and its flags. Handle numbers are
 * the mount's own, not the agent's, so they can outlive an agent handle.
 */
import { HandleIds, SlaveError, type Attr } from '../protocol/index.js';
import type { AgentHandle } from './agent-handles.js';
import type { HeldLock } from './flock-wait.js';
import type { ReadAhead } from './read-ahead.js';
import type { WrittenWhole } from './whole-files.js';
import type { WriteBehind } from './write-behind.js';

/** `agentFh`/`agentBoot`: the agent's handle, reopened after a restart (agent-handles.ts). */
export interface OpenFile extends AgentHandle {
  readonly fh: number;
  /** Current slave path; null once the name was unlinked through the mount. */
  path: string | null;
  readonly flags: number;
  readonly reader: ReadAhead;
  /** Present when the file was opened for writing. */
  readonly writer: WriteBehind | undefined;
  attr: Attr;
  /** Its creation, answered at once, was refused by the slave: its next flush or fsync reports it. */
  late?: SlaveError;
  /**
   * Answered from the whole content the mount holds (whole-files.ts): the agent has no handle
   * yet, and opens the file only when a request needs one.
   */
  unopened?: boolean;
  /** Created or truncated through the mount: its content while written from the start. */
  written?: WrittenWhole;
  /**
   * Its name went (unlink, rename over it) while the file kept another: what the mount caches
   * of that name may lag what this handle changes.
   */
  linkedElsewhere?: boolean;
  /** The flock(2) lock it holds on the slave (flock-wait.ts), which its release lets go. */
  flocked?: HeldLock;
}

export class OpenFiles {
  private readonly byFh = new Map<number, OpenFile>();
  private readonly byPath = new Map<string, Set<OpenFile>>();
  /** Open files whose name went (unlinked or replaced through the mount): another name may remain. */
  private readonly unnamed = new Set<OpenFile>();
  private readonly ids = new HandleIds();

  get size(): number {
    return this.byFh.size;
  }

  add(make: (fh: number) => OpenFile): OpenFile {
    const file = make(this.ids.take((fh) => this.byFh.has(fh)));
    this.byFh.set(file.fh, file);
    this.index(file);
    return file;
  }

  has(fh: number): boolean {
    return this.byFh.has(fh);
  }

  get(fh: number): OpenFile {
    const file = this.byFh.get(fh);
    if (!file) throw new SlaveError('EBADF', `no open file with handle ${fh} on this mount`);
    return file;
  }

  remove(fh: number): OpenFile {
    const file = this.get(fh);
    this.byFh.delete(fh);
    this.unindex(file);
    this.unnamed.delete(file);
    return file;
  }

  /** Open files whose name went through the mount while they stayed open. */
  nameless(): Iterable<OpenFile> {
    return this.unnamed;
  }

  /** Every open file. */
  all(): Iterable<OpenFile> {
    return this.byFh.values();
  }

  /** Open files whose current name is `path`. */
  at(path: string): Iterable<OpenFile> {
    return this.byPath.get(path) ?? [];
  }

  /** Whether a file is open under the name `path`. */
  openAt(path: string): boolean {
    return (this.byPath.get(path)?.size ?? 0) > 0;
  }

  unlinked(path: string): void {
    for (const file of [...this.at(path)]) {
      this.unindex(file);
      file.path = null;
      this.unnamed.add(file);
    }
  }

  /** Open files follow a rename, including those inside a renamed directory. */
  renamed(from: string, to: string): void {
    const prefix = `${from}/`;
    for (const [path, files] of [...this.byPath]) {
      if (path !== from && !path.startsWith(prefix)) continue;
      for (const file of [...files]) {
        this.unindex(file);
        file.path = to + path.slice(from.length);
        this.index(file);
      }
    }
  }

  /** renameat2's RENAME_EXCHANGE: the files open under either name (or below it) are under the other's. */
  exchanged(a: string, b: string): void {
    const aside = `${a}\0exchanging`; // no path has a NUL
    this.renamed(a, aside);
    this.renamed(b, a);
    this.renamed(aside, b);
  }

  private index(file: OpenFile): void {
    if (file.path === null) return;
    let set = this.byPath.get(file.path);
    if (!set) this.byPath.set(file.path, (set = new Set()));
    set.add(file);
  }

  private unindex(file: OpenFile): void {
    if (file.path === null) return;
    const set = this.byPath.get(file.path);
    set?.delete(file);
    if (set?.size === 0) this.byPath.delete(file.path);
  }
}
