/**
 * Open files of the agent, by the number the master holds. An unknown number is EBADF, never a
 * crash. A release that arrives while a read or write on the same handle is still running
 * waits for it, so a closed descriptor number can never be reused under a running operation.
 */
import { HandleIds, SlaveError } from '../../protocol/index.js';

export interface OpenFile {
  fd: number;
  /** Slave path when opened (the file may since have been renamed or unlinked). */
  slavePath: string;
  flags: number;
  /** Regular files are read until the buffer is full; devices and pipes return what they have. */
  regular: boolean;
}

interface Slot {
  file: OpenFile;
  busy: number;
  idle: (() => void) | undefined;
}

export class HandleTable {
  private readonly open = new Map<number, Slot>();
  private readonly ids = new HandleIds();

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
    const slot = this.slot(fh);
    this.open.delete(fh);
    if (slot.busy > 0) await new Promise<void>((resolve) => { slot.idle = resolve; });
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
