/**
 * Handle numbers: 32-bit, never 0, and not reused soon. The agent's for open files, devices and
 * processes (a master's stale number meets EBADF or ESRCH, not a stranger's handle), and the
 * mount's for the kernel (which outlive the agent's across a restart).
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
