/**
 * Open files of the agent, by the number the master holds. An unknown number is EBADF, never a
 * crash. A release that arrives while a read or write on the same handle is still running
 * waits for it, so a closed descriptor number can never be reused under a running operation.
 */
import { AGENT_HANDLE_LAST, HandleIds, SlaveError, isMasterHandle } from '../../protocol/index.js';
import { withTimeout } from '../with-timeout.js';

export interface OpenFile {
  fd: number;
  /** Slave path when opened (the file may since have been renamed or unlinked). */
  slavePath: string;
  flags: number;
  /** Regular files are read until the buffer is full; devices and pipes return what they have. */
  regular: boolean;
  /** The file's device and inode numbers ("dev:ino"): descriptors of one file share a commit's fsync (commits.ts). */
  inode?: string;
}

interface Slot {
  file: OpenFile;
  busy: number;
  idle: (() => void) | undefined;
}

export class HandleTable {
  private readonly open = new Map<number, Slot>();
  private readonly ids = new HandleIds(1, AGENT_HANDLE_LAST);
  /**
   * Numbers masters gave files they created (fs.create's `handle`, protocol/handle-ids.ts), by
   * origin and number: its requests that follow the create without waiting for its reply name
   * the file by it. Each master's own, and gone with the handle.
   */
  private readonly named = new Map<string, number>();
  private readonly nameOf = new Map<number, string>();
  /** Releases whose descriptor is not closed yet. */
  private readonly closing = new Set<Promise<void>>();

  constructor(
    private readonly limit: number,
    /** Closes a released descriptor (the agent's commits may keep it open until synced). */
    private readonly closer: (fd: number) => Promise<void>,
  ) {}

  get size(): number {
    return this.open.size;
  }

  add(file: OpenFile): number {
    if (this.open.size >= this.limit) {
      throw new SlaveError('EMFILE', `agent handle limit of ${this.limit} reached`);
    }
    const fh = this.ids.take((id) => this.open.has(id));
    this.open.set(fh, { file, busy: 0, idle: undefined });
    return fh;
  }

  /** Master `origin` names handle `fh` `handle` from now on (it released any file it named so before). */
  name(origin: string, handle: number, fh: number): void {
    const key = `${origin} ${handle}`;
    const before = this.named.get(key);
    if (before !== undefined) this.nameOf.delete(before);
    this.named.set(key, fh);
    this.nameOf.set(fh, key);
  }

  /** The agent's number for `fh` as master `origin` sent it (its own name for a file, or ours); undefined: no such name. */
  resolve(origin: string | null, fh: number): number | undefined {
    if (!isMasterHandle(fh)) return fh;
    return origin === null ? undefined : this.named.get(`${origin} ${fh}`);
  }

  get(fh: number): OpenFile {
    return this.slot(fh).file;
  }

  /** The open file `fh`, undefined when there is none. */
  find(fh: number): OpenFile | undefined {
    return this.open.get(fh)?.file;
  }

  /** Runs `work` with the file, keeping its descriptor open until `work` settles. */
  async use<T>(fh: number, work: (file: OpenFile) => Promise<T>): Promise<T> {
    const slot = this.slot(fh);
    slot.busy++;
    try {
      return await work(slot.file);
    } finally {
      if (--slot.busy === 0) slot.idle?.();
    }
  }

  /** Forgets the handle and closes its descriptor once no operation uses it. */
  async close(fh: number): Promise<void> {
    const closing = this.closeSlot(fh);
    this.closing.add(closing);
    try {
      await closing;
    } finally {
      this.closing.delete(closing);
    }
  }

  /**
   * Resolves once every descriptor released so far is closed or handed to the commits (which a
   * spawn then makes close theirs: Commits.unbusy), or after `maxMs`: a program the slave runs
   * next must not find a file the master closed still open (exec fails with ETXTBSY, umount with
   * EBUSY), and a close stuck in a hung filesystem must not hold it up for ever.
   */
  async released(maxMs: number): Promise<void> {
    if (this.closing.size === 0) return;
    await withTimeout(Promise.allSettled([...this.closing]), maxMs);
  }

  private async closeSlot(fh: number): Promise<void> {
    const slot = this.slot(fh);
    this.open.delete(fh);
    const name = this.nameOf.get(fh);
    if (name !== undefined) {
      this.nameOf.delete(fh);
      this.named.delete(name);
    }
    if (slot.busy > 0) await new Promise<void>((resolve) => { slot.idle = resolve; });
    // The descriptor closes on the loop's next turn, after the reply of the batch that released
    // it has gone: handing a close to the thread pool wakes a thread, which took the CPU from the
    // batch's next requests (a release travels with the next file's open, write and attributes):
    // 50 µs of a write 4 KiB + close loop's 400 µs in the agent, its next open(O_TRUNC) 30 µs slower.
    await new Promise<void>((resolve) => { setImmediate(resolve); });
    await this.closer(slot.file.fd);
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.open.keys()].map((fh) => this.close(fh)));
  }

  private slot(fh: number): Slot {
    const slot = this.open.get(fh);
    if (!slot) throw new SlaveError('EBADF', `no open file with handle ${fh}`);
    return slot;
  }
}
