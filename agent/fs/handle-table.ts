/**
 * Open files of the agent, by the number the master holds. An unknown number is EBADF, never a
 * crash. Handles keep their FileHandle: Node defers a close until the reads and writes in flight
 * on it finish, so a late release cannot make a read land on a reused descriptor.
 */
import type { FileHandle } from 'node:fs/promises';
import { SlaveError } from '../../protocol/index.js';

export interface OpenFile {
  file: FileHandle;
  /** Slave path when opened (the file may since have been renamed or unlinked). */
  slavePath: string;
  flags: number;
  /** Regular files are read until the buffer is full; devices and pipes return what they have. */
  regular: boolean;
}

export class HandleTable {
  private readonly open = new Map<number, OpenFile>();
  private next = 1;

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.open.size;
  }

  add(entry: OpenFile): number {
    if (this.open.size >= this.limit) {
      throw new SlaveError('EMFILE', `agent handle limit of ${this.limit} reached`);
    }
    // Numbers are not reused soon, so a stale handle of the master's hits EBADF, not a stranger.
    while (this.open.has(this.next) || this.next === 0) this.next = (this.next + 1) >>> 0;
    const fh = this.next;
    this.next = (this.next + 1) >>> 0;
    this.open.set(fh, entry);
    return fh;
  }

  get(fh: number): OpenFile {
    const entry = this.open.get(fh);
    if (!entry) throw new SlaveError('EBADF', `no open file with handle ${fh}`);
    return entry;
  }

  take(fh: number): OpenFile {
    const entry = this.get(fh);
    this.open.delete(fh);
    return entry;
  }

  async closeAll(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.allSettled(all.map((e) => e.file.close()));
  }
}
