/**
 * Numbers the agent hands masters for open files, devices and processes: 32-bit, never 0, and
 * not reused soon, so a master's stale number meets EBADF or ESRCH, not a stranger's handle.
 */
export class HandleIds {
  private next = 1;

  /** The next number `inUse` does not claim. */
  take(inUse: (id: number) => boolean): number {
    while (inUse(this.next) || this.next === 0) this.next = (this.next + 1) >>> 0;
    const id = this.next;
    this.next = (this.next + 1) >>> 0;
    return id;
  }
}
