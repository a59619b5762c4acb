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
    void reply.then((bytes) => {
      if (!this.replies.has(key)) return;
      this.sizes.set(key, bytes.length);
      this.bytes += bytes.length;
      this.evict();
    }, () => this.forget(key));
    this.evict();
    return reply;
  }

  private evict(): void {
    for (const key of this.replies.keys()) {
      if (this.replies.size <= this.maxEntries && this.bytes <= this.maxBytes) return;
      this.forget(key);
    }
  }

  private forget(key: string): void {
    this.replies.delete(key);
    this.bytes -= this.sizes.get(key) ?? 0;
    this.sizes.delete(key);
  }
}
