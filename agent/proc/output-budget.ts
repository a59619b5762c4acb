/**
 * The agent's budget for process output its masters have not received yet (spawned-process.ts
 * keeps every event until its master has it, to send it again after a NATS failover).
 *
 * Each master asks for a credit window (8 MiB); alone, that let 100 masters that stopped reading
 * hold 800 MiB of the agent. Across all processes the agent keeps at most `bytes`: each
 * process may have its window or its share of the budget (the budget divided by the processes
 * the agent has), whichever is smaller, sent and not credited. A process whose share is used up
 * is not read until its master returns credit: its writes block, as on a full pipe, and so
 * does nothing else of it.
 *
 * Shares shrink as processes start, and output sent cannot be taken back: processes that sent
 * their window before others started hold more than their new share, and the agent more than
 * its budget. A process that still holds more than its share `graceMs` later while the agent is
 * over its budget has fallen behind: it is cut off (SpawnedProcess.cut), which frees what it
 * held. So the agent is over its budget only for `graceMs` at a time, by at most what the
 * processes started meanwhile were given. "Over" allows `readSlack` per process: output is
 * paused once its window is full, and the read that filled it may have gone past.
 */

/** What a process keeps and may send, as the budget sees it. */
export interface BudgetMember {
  /** Bytes of events kept (sent, not known received). */
  readonly keptBytes: number;
  /** Whether the process has ended (its exit is sent): an ended process is never cut. */
  readonly ended: boolean;
  /** When it was first seen over its share while the agent was over budget; undefined otherwise. */
  behindSince: number | undefined;
  /** Cuts it off: drops what it keeps, closes its output, hangs up (spawned-process.ts). */
  cut(message: string): void;
}

/** Default budget: 256 MiB, or an eighth of the slave's memory if that is less (a small board). */
export function defaultOutputBudget(totalMemory: number): number {
  return Math.max(16 * 1024 * 1024, Math.min(256 * 1024 * 1024, Math.floor(totalMemory / 8)));
}

export const DEFAULT_OUTPUT_GRACE_MS = 10_000;

export class OutputBudget {
  /** Bytes kept by every process together. */
  private keptTotal = 0;
  private readonly members = new Set<BudgetMember>();
  private cutCount = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly bytes: number,
    readonly graceMs: number,
    /** The most one read of a pipe or terminal may add past a full window (the backend's outputReadBytes). */
    private readonly readSlack: number,
    private readonly onCut: (member: BudgetMember, message: string) => void = () => undefined,
  ) {
    // Checked often enough that a cut comes within a quarter of the grace after it is due.
    this.timer = setInterval(() => this.checkBehind(), Math.max(100, Math.min(1000, Math.floor(graceMs / 4))));
    this.timer.unref();
  }

  get kept(): number {
    return this.keptTotal;
  }

  /** Processes cut off since the agent started. */
  get cuts(): number {
    return this.cutCount;
  }

  /** The most one process may have sent and not had credited, now. */
  share(): number {
    return Math.max(1, Math.floor(this.bytes / Math.max(1, this.members.size)));
  }

  join(member: BudgetMember): void {
    this.members.add(member);
  }

  /**
   * The process is forgotten: what it kept is freed, and the others' shares grow. They use it
   * as their masters return credit: a process paused for a stalled master stays as it is, so
   * what one that was cut off held is not simply taken up by the other stalled ones.
   */
  leave(member: BudgetMember): void {
    if (!this.members.delete(member)) return;
    this.keptTotal -= member.keptBytes;
  }

  /** A member's kept bytes changed by `delta` (after it left, they are no longer counted). */
  changed(member: BudgetMember, delta: number): void {
    if (this.members.has(member)) this.keptTotal += delta;
  }

  /** Cuts off the processes that stayed over their share for `graceMs` while the agent was over budget. */
  checkBehind(now = Date.now()): void {
    if (!this.exceeded) {
      for (const member of this.members) member.behindSince = undefined;
      return;
    }
    const share = this.share();
    const behind: BudgetMember[] = [];
    for (const member of this.members) {
      if (member.ended || member.keptBytes <= share + this.readSlack) {
        member.behindSince = undefined;
        continue;
      }
      member.behindSince ??= now;
      if (now - member.behindSince >= this.graceMs) behind.push(member);
    }
    // Those holding the most first, and no more of them than it takes to be within budget again.
    behind.sort((a, b) => b.keptBytes - a.keptBytes);
    for (const member of behind) {
      const message = `output cut off: this master fell behind, leaving ${mib(member.keptBytes)} of it untaken for ${this.graceMs / 1000} s `
        + `while the agent was over its output budget (${mib(this.bytes)} for all its processes, ${mib(share)} each now)`;
      this.cutCount++;
      member.cut(message);
      this.onCut(member, message);
      if (!this.exceeded) break;
    }
  }

  /** More is kept than the budget allows, reads past full windows aside. */
  private get exceeded(): boolean {
    return this.keptTotal > this.bytes + this.members.size * this.readSlack;
  }

  close(): void {
    clearInterval(this.timer);
  }
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
