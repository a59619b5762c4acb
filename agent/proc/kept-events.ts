/**
 * The events one process sent that its master is not known to have yet, in seq order: sent again
 * on proc.resend (NATS drops what is published while a subscriber moves to another server), and
 * counted, in bytes, against the agent's output budget (output-budget.ts).
 */
interface Kept {
  seq: number;
  /** The output bytes sent up to and including it (Infinity for the exit and a cut, which only `received` clears). */
  end: number;
  event: Uint8Array;
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

  push(seq: number, end: number, event: Uint8Array): void {
    this.events.push({ seq, end, event });
    this.count(event.length);
  }

  /** Every kept event from seq `from` on, in order. */
  from(from: number): Uint8Array[] {
    return this.events.filter((kept) => kept.seq >= from).map((kept) => kept.event);
  }

  /** Events before `next` were received, and output within `credited` bytes was written out: both are dropped. */
  forget(next: number, credited: number): void {
    let drop = 0;
    let freed = 0;
    for (const kept of this.events) {
      if (kept.seq >= next && kept.end > credited) break;
      freed += kept.event.length;
      drop++;
    }
    if (drop === 0) return;
    this.events.splice(0, drop);
    this.count(-freed);
  }

  /** Nobody will ask for them again. */
  clear(): void {
    this.events.length = 0;
    this.count(-this.kept);
  }

  private count(delta: number): void {
    this.kept += delta;
    this.changed(delta);
  }
}
