/**
 * flock(2) locks masters hold through the agent, leased as an NFSv4 server leases a client's
 * state: a master asks again for each lock it holds every third of the lease (mount/flock-wait.ts),
 * and a lock nobody asked for during a whole lease is let go. A master that died or was cut off
 * (its machine powered down, a network gone) would otherwise keep a device or a lock file locked
 * for as long as the agent runs: its handles have no other end on the slave.
 *
 * A lock also goes at its handle's release, before the descriptor's close: a written file's
 * descriptor may stay open until the next commit (fs/commits.ts), and the lock must not.
 */
import type { Logger } from 'pino';

interface Held {
  fd: number;
  renewed: number;
  what: string;
  /** Whether the handle still holds this descriptor (a closed one's number may be reused). */
  open: () => boolean;
}

export class LockLeases {
  /** By `kind:fh` (fs or dev, and the agent's handle number). */
  private readonly held = new Map<string, Held>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly leaseMs: number,
    /** flock(fd, LOCK_UN); throws the call's errno. */
    private readonly unlock: (fd: number) => void,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => this.expire(Date.now()), Math.max(50, Math.min(leaseMs / 4, 5000)));
    this.timer.unref();
  }

  /** Handle `key` took (or asked again for) a lock on `fd`: its lease starts again. */
  taken(key: string, fd: number, what: string, open: () => boolean): void {
    this.held.set(key, { fd, renewed: Date.now(), what, open });
  }

  /** Handle `key` let go of its lock itself (LOCK_UN). */
  dropped(key: string): void {
    this.held.delete(key);
  }

  /** Handle `key` is released: its lock goes now, whatever keeps the descriptor open after. */
  released(key: string): void {
    const held = this.held.get(key);
    if (held === undefined) return;
    this.held.delete(key);
    if (held.open()) this.unlockQuietly(held, 'released');
  }

  /** Lets go of every lock not asked for since `now - leaseMs`. */
  expire(now: number): void {
    for (const [key, held] of this.held) {
      if (!held.open()) {
        this.held.delete(key); // closed some other way (a device gone, its stream's lease): the lock went with it
        continue;
      }
      if (now - held.renewed <= this.leaseMs) continue;
      this.held.delete(key);
      this.log.warn({ path: held.what, leaseMs: this.leaseMs }, 'a master did not renew its flock lock for a whole lease: letting it go');
      this.unlockQuietly(held, 'expired');
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private unlockQuietly(held: Held, why: string): void {
    try {
      this.unlock(held.fd);
    } catch (err) {
      this.log.warn({ err, path: held.what, why }, 'could not let go of a flock lock');
    }
  }
}
