/**
 * What keeps the kernel's caches of the mount true: how long it may keep each answer, and the
 * invalidations that drop what it holds when the slave changes. The adapter (fuse-adapter.ts)
 * answers the kernel; this decides for how long, and tells the kernel what to forget.
 *
 * - Generations: every invalidation moves the generation. An answer fetched across an
 *   invalidation of a node it is about may predate the change: it is given, but not cached
 *   (`since`). Per node, so that a busy directory elsewhere does not stop caching here.
 * - Invalidations: of an inode, a name, or everything, sent in order by the binding's notifier
 *   thread; names something is mounted on are kept (a sidecar's device tree over /dev).
 * - Fences: `applied()` resolves once every invalidation asked for so far reached the kernel;
 *   an answer that corrects what the mount told the kernel waits for it (`settle`).
 * - Data across opens: while the feed is live, an open keeps the file's page cache and a
 *   directory's cached listing (keep_cache, cache_readdir), which the feed's invalidations drop.
 *   A node whose kernel-held data may not be the slave's (invalidated since: a read in flight
 *   then may have refilled it from before the change; or a write of it refused) is doubted:
 *   its next open drops them instead (`keepsData`).
 * - A kernel never let keep an answer (`-o cache=no`) is sent no invalidation of names and
 *   attributes: it holds none to drop, it asks at every use, and its page cache follows the
 *   size and mtime each answer brings (auto_inval_data). Such an invalidation would only cost:
 *   one that crosses a GETATTR in flight makes the kernel discard that answer (the inode's
 *   attr_version moved), so a read past the old end of a file the slave just grew took the old
 *   size and ended there, though the answer had the new one. Symlink targets, which the kernel
 *   keeps whatever the timeouts, are still dropped (`forgetInode`).
 */
import { nameToBytes } from '../protocol/index.js';
import { mountpointsUnder } from './mount-watch.js';
import type { FuseBinding, MountHandle } from './native/binding.js';
import type { FsNode, NodeTable } from './node-table.js';

/** Seconds the kernel may keep an answer. */
export interface KernelTimeouts {
  entry: number;
  attr: number;
  negative: number;
}

/** Stores the cache remembers before it forgets those sent already (store()). */
const MAX_STORES_KEPT = 256;
/** Nodes whose last invalidation is remembered; past it, everything counts as just changed. */
const MAX_CHANGED_NODES = 100_000;
const NO_CACHING: KernelTimeouts = Object.freeze({ entry: 0, attr: 0, negative: 0 });

/** Whether answers given with `timeouts` may be kept at all. */
export function keeps(timeouts: KernelTimeouts): boolean {
  return timeouts.entry > 0 || timeouts.attr > 0 || timeouts.negative > 0;
}

export function joinPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** Whether `node` lies below directory `dir` by any of its names (a directory has one). */
function below(node: FsNode, dir: FsNode): boolean {
  return node.links.some((link) => link.parent === dir || below(link.parent, dir));
}

export class KernelCache {
  /** The mount the invalidations go to, once mounted. */
  mount: MountHandle | undefined;
  private timeouts: KernelTimeouts;
  /** Moves with every invalidation. */
  private generation = 0;
  /** When each node was last invalidated (a directory also when a name in it was). */
  private readonly changedAt = new Map<number, number>();
  /** Everything counts as changed at this generation (invalidateAll, or changedAt overflowing). */
  private allChangedAt = 0;
  /** Moves when the mount corrects what it told the kernel (a refused pipelined change). */
  private staleGeneration = 0;
  /** The stale generation the kernel has applied every invalidation up to (see settle()). */
  private appliedStale = 0;
  private readonly fences = new Map<number, () => void>();
  private nextFence = 1;
  /** Whether the kernel was ever let keep an answer: until then nothing is invalidated. */
  private everKept: boolean;
  /** Whether opens keep the kernel's data of a file or listing (the feed is live, answers are kept). */
  private keepAcrossOpens = false;
  /** Nodes whose data in the kernel may not be the slave's: their next open drops it. */
  private readonly doubted = new WeakSet<FsNode>();
  /** Stores of a file's data queued for the kernel (store()), by node: the note's place in the queue. */
  private readonly stores = new Map<number, number>();

  constructor(
    private readonly binding: FuseBinding, private readonly nodes: NodeTable,
    private readonly mountPath: string, timeouts: KernelTimeouts,
  ) {
    this.timeouts = timeouts;
    this.everKept = keeps(timeouts);
  }

  /** The timeouts for answers about nothing that changed meanwhile. */
  get current(): KernelTimeouts {
    return this.timeouts;
  }

  /**
   * New answers are cached this long (the feed of slave changes came or went); `feedLive`: every
   * change on the slave reaches the mount, so opens may keep what the kernel holds of the data.
   */
  setTimeouts(timeouts: KernelTimeouts, feedLive = false): void {
    this.timeouts = timeouts;
    this.everKept ||= keeps(timeouts);
    this.keepAcrossOpens = feedLive && timeouts.attr > 0;
  }

  /**
   * Whether an open of `node` answered now may keep the page cache (or cached listing) the
   * kernel has of it. Not while the feed is down, nor for a doubted node, whose open drops it:
   * that clears the doubt.
   */
  keepsData(node: FsNode): boolean {
    const doubted = this.doubted.delete(node);
    return this.keepAcrossOpens && !doubted;
  }

  /** What the kernel holds of `node`'s data may not be the slave's (a write of it refused). */
  doubt(node: FsNode): void {
    this.doubted.add(node);
  }

  /**
   * `data` is all of `node` as the slave has it (just written through the mount and
   * acknowledged, unchanged since): it goes into the kernel's page cache while opens keep that,
   * so that reading the file back asks the mount nothing. Why: the kernel marks up to date only
   * the pages a write covered whole, so a file written in pieces that are not whole pages (tar's
   * 10 KiB records) kept two pages in five unread, and read back (git hashing what tar wrote)
   * came as a FUSE read per such page: 102 for a file of 1 MiB. Sent in order with the
   * invalidations, so one of a later change drops it.
   */
  store(node: FsNode, data: Buffer): void {
    const mount = this.kernel;
    if (!mount || !this.keepAcrossOpens || data.length === 0 || this.doubted.has(node)) return;
    const seq = this.binding.storeData(mount, node.id, 0, data);
    if (seq === undefined) return;
    // Those sent already are forgotten now and then (a file stored and never opened again stays).
    if (this.stores.size >= MAX_STORES_KEPT) {
      const sent = this.binding.notesSent(mount);
      for (const [id, queued] of this.stores) if (queued <= sent) this.stores.delete(id);
    }
    this.stores.set(node.id, seq);
  }

  /**
   * Resolves once the store queued for node `id` reached the kernel; undefined when none is on
   * its way. What may write the file (an open for writing, a truncation) waits for it: the
   * kernel copies a program's bytes into the page cache before it sends the write, and a store
   * landing after them would put the older bytes back (a truncation: the older size).
   */
  stored(id: number): Promise<void> | undefined {
    const seq = this.stores.get(id);
    if (seq === undefined) return undefined;
    const mount = this.mount;
    if (!mount || this.binding.notesSent(mount) >= seq) {
      this.stores.delete(id);
      return undefined;
    }
    return this.applied().then(() => {
      if (this.stores.get(id) === seq) this.stores.delete(id);
    });
  }

  /**
   * Data of `node` fetched since `generation` is about to reach the kernel: if the node was
   * invalidated meanwhile, it may predate the change and outlive its invalidation.
   */
  filled(generation: number, node: FsNode): void {
    if (this.changedSince(generation, [node.id])) this.doubted.add(node);
  }

  /** Where invalidations go: nowhere while the kernel has kept nothing. */
  private get kernel(): MountHandle | undefined {
    return this.everKept ? this.mount : undefined;
  }

  /** The generation now: an answer fetched from here on is checked against it (`since`). */
  get now(): number {
    return this.generation;
  }

  /** The stale generation now: an answer started here settles against it (`settle`). */
  get staleNow(): number {
    return this.staleGeneration;
  }

  /** The timeouts for an answer about `nodes` fetched since `generation`: none if one changed meanwhile. */
  since(generation: number, ...nodes: number[]): KernelTimeouts {
    return this.changedSince(generation, nodes) ? NO_CACHING : this.timeouts;
  }

  /** Whether any of `nodes` was invalidated since `generation`. */
  private changedSince(generation: number, nodes: number[]): boolean {
    if (generation === this.generation) return false;
    if (this.allChangedAt > generation) return true;
    for (const id of nodes) if ((this.changedAt.get(id) ?? 0) > generation) return true;
    return false;
  }

  private changed(id: number): void {
    if (this.changedAt.size >= MAX_CHANGED_NODES) {
      this.changedAt.clear();
      this.allChangedAt = this.generation;
    }
    this.changedAt.set(id, this.generation);
  }

  /** What the mount told the kernel of `dirPath`/`name` was wrong: drop it before answering on. */
  invalidateStale(dirPath: string, name: string, entry: boolean): void {
    this.staleGeneration++;
    this.invalidate(dirPath, name, entry);
  }

  /** The slave changed `name` in directory `dirPath` (null: anything in it). */
  invalidate(dirPath: string, name: string | null, entry: boolean): void {
    this.generation++;
    const dir = this.nodes.find(dirPath);
    if (!dir) return;
    this.changed(dir.id);
    this.doubted.add(dir);
    const child = name === null ? undefined : this.nodes.child(dir, name);
    if (child) {
      this.changed(child.id);
      this.doubted.add(child);
    }
    // Anything below: answers in flight about it are not kept.
    if (name === null) this.allChangedAt = this.generation;
    const mount = this.kernel;
    if (!mount) return;
    if (name === null) {
      this.binding.invalInode(mount, dir.id, 0, 0);
      const mounted = mountpointsUnder(this.mountPath);
      for (const node of this.nodes.nodes()) {
        for (const link of node.links) if (link.parent === dir) this.invalidateName(mount, link, mounted);
        // Any file below may have changed, and a name looked up again finds its node again.
        if (below(node, dir)) this.doubted.add(node);
      }
      return;
    }
    if (entry) {
      this.binding.invalEntry(mount, dir.id, nameToBytes(name));
      this.binding.invalInode(mount, dir.id, 0, 0);
    }
    if (child) this.binding.invalInode(mount, child.id, 0, 0);
  }

  /** Everything the kernel holds of the slave may be stale: drop it all. */
  invalidateAll(): void {
    this.generation++;
    this.allChangedAt = this.generation;
    const mount = this.kernel;
    if (!mount) return;
    const mounted = mountpointsUnder(this.mountPath);
    for (const node of this.nodes.nodes()) {
      this.binding.invalInode(mount, node.id, 0, 0);
      this.doubted.add(node);
      for (const link of node.links) this.invalidateName(mount, link, mounted);
    }
  }

  /** The kernel drops what it holds of one node's inode (a link target it must ask for again). */
  forgetInode(id: number): void {
    if (this.mount) this.binding.invalInode(this.mount, id, 0, 0);
  }

  /**
   * A name is dropped, unless something is mounted on it (a sidecar's device tree over the
   * slave's /dev): older kernels detach such mounts with the name. Its inode is still
   * invalidated, and the binding only expires names where the kernel can.
   */
  private invalidateName(mount: MountHandle, link: { parent: FsNode; name: string }, mounted: Set<string>): void {
    if (mounted.size > 0) {
      const parent = this.nodes.pathOf(link.parent);
      if (parent !== null && mounted.has(joinPath(parent, link.name))) return;
    }
    this.binding.invalEntry(mount, link.parent.id, nameToBytes(link.name));
  }

  /** Resolves once every invalidation asked for so far has reached the kernel. */
  applied(): Promise<void> {
    const mount = this.mount;
    if (!mount) return Promise.resolve();
    const id = this.nextFence++;
    const stale = this.staleGeneration;
    return new Promise((resolve) => {
      this.fences.set(id, () => {
        this.appliedStale = Math.max(this.appliedStale, stale);
        resolve();
      });
      this.binding.fence(mount, id);
    });
  }

  /** The binding reached fence `id` (its notifier thread sent everything queued before it). */
  fenced(id: number): void {
    this.fences.get(id)?.();
    this.fences.delete(id);
  }

  /** The session ended: nothing more reaches the kernel, and nobody waits for a fence. */
  ended(): void {
    this.mount = undefined;
    for (const resolve of this.fences.values()) resolve();
    this.fences.clear();
  }

  /**
   * Before an answer that followed invalidations (a change the agent refused after the mount
   * had told the kernel it was made): the kernel must have dropped what it held first, or the
   * caller's next stat would still see it.
   */
  async settle(started: number): Promise<void> {
    if (this.staleGeneration !== started && this.appliedStale < this.staleGeneration) await this.applied();
  }
}
