/**
 * The agent's duplicate request cache, as NFS servers keep one: the reply of every request
 * that must not run twice (protocol NOT_IDEMPOTENT), by request id, so that a master retrying
 * after a lost reply (NATS restarted, a timeout) gets the first answer instead of a second
 * run: a retried rename does not answer ENOENT, a retried spawn does not start a second
 * process. A retry that arrives while the first is still running waits for the same answer.
 * Bounded by entries and bytes; the oldest go first. Lost with the agent process: a restarted
 * agent cannot know what its predecessor did (the master's heuristics then, see
 * transport/agent-client.ts).
 */
export class ReplayCache {
  private readonly replies = new Map<string, Promise<Uint8Array>>();
  private readonly sizes = new Map<string, number>();
  private bytes = 0;
  /**
   * The keys in the order they came, the oldest at `head` (some forgotten since). Eviction reads
   * them from here, not from the Map's own order: a Map keeps a deleted entry's slot until it is
   * rebuilt, and its iterator steps over every such slot, so with the cache full each eviction
   * walked thousands of them (10 µs per request instead of 1-3).
   */
  private order: [string, Promise<Uint8Array>][] = [];
  private head = 0;

  constructor(private readonly maxEntries = 16_384, private readonly maxBytes = 32 * 1024 * 1024) {}

  get size(): number {
    return this.replies.size;
  }

  /** The reply for `key`: the one already given, or `produce()`'s, remembered. */
  run(key: string, produce: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const known = this.replies.get(key);
    if (known) return known;
    const reply = produce();
    this.replies.set(key, reply);
    this.order.push([key, reply]);
    void reply.then((bytes) => {
      if (this.replies.get(key) !== reply) return;
      this.sizes.set(key, bytes.length);
      this.bytes += bytes.length;
      this.evict();
    }, () => {
      if (this.replies.get(key) === reply) this.forget(key);
    });
    this.evict();
    return reply;
  }

  private evict(): void {
    while ((this.replies.size > this.maxEntries || this.bytes > this.maxBytes) && this.head < this.order.length) {
      const [key, reply] = this.order[this.head++] as [string, Promise<Uint8Array>];
      // Not when it was forgotten since (a failed request) and run again: that is later in the order.
      if (this.replies.get(key) === reply) this.forget(key);
    }
    // Rebuilt once half of it is behind `head`, or once it holds twice the cache's size ahead of
    // it: only failed runs leave places there that eviction never reaches, bounded all the same.
    if ((this.head > 1024 && this.head * 2 > this.order.length) || this.order.length - this.head > 2 * this.maxEntries + 1024) {
      this.order = this.order.slice(this.head).filter(([k, r]) => this.replies.get(k) === r);
      this.head = 0;
    }
  }

  private forget(key: string): void {
    this.replies.delete(key);
    this.bytes -= this.sizes.get(key) ?? 0;
    this.sizes.delete(key);
  }
}
