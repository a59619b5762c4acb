/**
 * Directory listings too large for one reply are paged: the rest of the listing is kept here
 * under a cursor number for a short while. Bounded in count and age, so an abandoned listing
 * cannot hold memory for ever.
 */
import type { ReaddirEntry } from '../../protocol/index.js';
import { SlaveError } from '../../protocol/index.js';

/** A listed entry, and whether it has no extended attribute at all (the reply's `bare`). */
export type ListedEntry = [...ReaddirEntry, boolean];

interface Pending {
  entries: ListedEntry[];
  expires: number;
}

export class ReaddirCursors {
  private readonly pending = new Map<number, Pending>();
  private next = 1;

  constructor(private readonly maxCursors = 256, private readonly ttlMs = 30_000) {}

  park(entries: ListedEntry[]): number {
    this.expire();
    if (this.pending.size >= this.maxCursors) {
      const oldest = this.pending.keys().next().value as number;
      this.pending.delete(oldest);
    }
    const cursor = this.next;
    this.next = this.next >= 0xffffffff ? 1 : this.next + 1;
    this.pending.set(cursor, { entries, expires: Date.now() + this.ttlMs });
    return cursor;
  }

  take(cursor: number): ListedEntry[] {
    const found = this.pending.get(cursor);
    this.pending.delete(cursor);
    if (!found || found.expires < Date.now()) {
      throw new SlaveError('EINVAL', `readdir cursor ${cursor} is unknown or expired`);
    }
    return found.entries;
  }

  private expire(): void {
    const now = Date.now();
    for (const [cursor, p] of this.pending) if (p.expires < now) this.pending.delete(cursor);
  }
}
