/**
 * flock(2) on a mount, served by the slave so that its own programs and other masters see the lock
 * (`flock(1)` around a lab's shared resource, a lock file a slave daemon takes too). The agent
 * never waits for a lock: it serves every master from one thread, so a lock held elsewhere answers
 * EWOULDBLOCK at once. A caller that waits (no LOCK_NB) asks again, 2 ms later, then twice as late
 * each time up to RETRY_MAX_MS, as Linux's NFS client does for a blocking lock the server refused
 * (it backs off to 30 s). It ends when the lock is taken, when the caller gets a signal (EINTR, as
 * a local flock), or when the file is closed meanwhile (its caller died: nobody waits any more).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SlaveError, errnoNumber, type FlockLock } from '../protocol/index.js';

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const RETRY_FIRST_MS = 2;
/** A freed lock is taken at most this late by a waiter (NFS waits up to 30 s). */
export const RETRY_MAX_MS = 100;
const EWOULDBLOCK = errnoNumber('EWOULDBLOCK');

/** A lock a mount's open file or device holds on the slave. */
export type HeldLock = Exclude<FlockLock, 'un'>;

/** The lock flock(2)'s `op` asks for; EINVAL for no lock or two, as flock(2). */
export function flockLock(op: number): FlockLock {
  switch (op & ~LOCK_NB) {
    case LOCK_SH: return 'sh';
    case LOCK_EX: return 'ex';
    case LOCK_UN: return 'un';
    default: throw new SlaveError('EINVAL', `flock: operation ${op} is not one of LOCK_SH, LOCK_EX, LOCK_UN`);
  }
}

/**
 * Takes (or drops) the lock flock(2)'s `op` names with `attempt`, which asks the agent once;
 * waits as above unless `op` has LOCK_NB. `open()`: whether the file is still open.
 */
export async function flockOnSlave(
  op: number, attempt: (lock: FlockLock) => Promise<void>, interrupted: () => boolean, open: () => boolean,
): Promise<void> {
  const lock = flockLock(op);
  for (let wait = RETRY_FIRST_MS; ; wait = Math.min(wait * 2, RETRY_MAX_MS)) {
    try {
      await attempt(lock);
      return;
    } catch (err) {
      const held = err instanceof SlaveError && errnoNumber(err.errnoName) === EWOULDBLOCK;
      if (!held || (op & LOCK_NB) !== 0) throw err;
    }
    await sleep(wait);
    if (interrupted()) throw new SlaveError('EINTR', `flock ${lock}: interrupted while another holder had the lock`);
    if (!open()) throw new SlaveError('EBADF', `flock ${lock}: the file was closed while waiting for the lock`);
  }
}

/** How often a master asks again for the locks it holds, when the agent does not say its lease. */
export const DEFAULT_RENEW_MS = 20_000;

/** A mount's open file or open device, as far as its flock lock goes. */
export interface LockHolder {
  flocked?: HeldLock;
}

/** What a lock asked for again and refused is: its holder was released meanwhile, it counts as held, or it is lost. */
export type Refusal = 'released' | 'held' | 'lost';

/**
 * Asks again, every `periodMs` while any is held, for each lock a mount holds (`pass`, which
 * returns how many it still holds): the agent's lease on them (agent/lock-leases.ts) starts
 * again, and an agent that restarted meanwhile is noticed (its new boot answers ESTALE, and the
 * file is opened again and locked again) even by a mount that does nothing else. Its timer
 * keeps no process alive.
 */
export class LockRenewal {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** A pass asked for while one ran: it runs after it (that one may have begun before a restart). */
  private next: Promise<void> | undefined;

  constructor(private readonly periodMs: number, private readonly pass: () => Promise<number>) {}

  /** `holder`'s flock succeeded: it holds `lock` now (none after 'un'), renewed while any is held. */
  record(holder: LockHolder, lock: FlockLock): void {
    holder.flocked = lock === 'un' ? undefined : lock;
    if (holder.flocked === undefined || this.timer !== undefined) return;
    this.timer = setInterval(() => void this.now(), this.periodMs);
    this.timer.unref();
  }

  /**
   * One pass for a mount (its `pass`): each of `holders`' locks asked for again (`take`), one at a
   * time. A refusal is `refused`'s to judge (and to log); a lost lock is forgotten. Returns how
   * many are held.
   */
  static async takeAgain<H extends LockHolder>(
    holders: readonly H[], take: (holder: H, lock: HeldLock) => Promise<unknown>,
    refused: (holder: H, lock: HeldLock, err: unknown) => Refusal,
  ): Promise<number> {
    let held = 0;
    for (const holder of holders) {
      const lock = holder.flocked;
      if (lock === undefined) continue;
      const outcome = await take(holder, lock).then((): Refusal => 'held', (err: unknown) => refused(holder, lock, err));
      if (outcome === 'held') held++;
      else if (outcome === 'lost') holder.flocked = undefined;
    }
    return held;
  }

  /** One pass now (an agent restarted), or once the one under way ends. */
  now(): Promise<void> {
    if (this.running !== undefined) {
      this.next ??= this.running.then(() => {
        this.next = undefined;
        return this.now();
      });
      return this.next;
    }
    this.running = this.pass().then((left) => {
      if (left === 0 && this.timer !== undefined) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    }, () => undefined).finally(() => { this.running = undefined; });
    return this.running;
  }
}
