/**
 * The events one process sent that its master is not known to have yet, in seq order: sent again
 * on proc.resend (NATS drops what is published while a subscriber moves to another server), and
 * counted, in bytes, against the agent's output budget (output-budget.ts).
 */
export interface Kept {
  seq: number;
  /** The output bytes sent up to and including it (Infinity for the exit and a cut, which only `received` clears). */
  end: number;
  event: Uint8Array;
  /** Built in a buffer of the agent's output buffers (output-buffers.ts), which it holds until received. */
  pinned: boolean;
  /** Sent again: its memory is never used again, as a credit for the first copy could come while this one is written. */
  resent: boolean;
}

export class KeptEvents {
  private readonly events: Kept[] = [];
  private kept = 0;

  /** `changed`: the bytes kept grew (positive) or shrank by this much. */
  constructor(private readonly changed: (delta: number) => void) {}

  /** Bytes of the events kept. */
  get bytes(): number {
    return this.kept;
  }

  push(seq: number, end: number, event: Uint8Array, pinned = false): void {
    this.events.push({ seq, end, event, pinned, resent: false });
    this.count(event.length);
  }

  /** Every kept event from seq `from` on, in order, to be sent again. */
  from(from: number): Uint8Array[] {
    const again = this.events.filter((kept) => kept.seq >= from);
    for (const kept of again) kept.resent = true;
    return again.map((kept) => kept.event);
  }

  /**
   * Events before `next` were received, and output within `credited` bytes was written out: both
   * are dropped, and returned (their buffers may be used again).
   */
  forget(next: number, credited: number): Kept[] {
    let drop = 0;
    let freed = 0;
    for (const kept of this.events) {
      if (kept.seq >= next && kept.end > credited) break;
      freed += kept.event.length;
      drop++;
    }
    if (drop === 0) return [];
    const dropped = this.events.splice(0, drop);
    this.count(-freed);
    return dropped;
  }

  /** Nobody will ask for them again: all are dropped, and returned. */
  clear(): Kept[] {
    const dropped = this.events.splice(0);
    this.count(-this.kept);
    return dropped;
  }

  private count(delta: number): void {
    this.kept += delta;
    this.changed(delta);
  }
}
