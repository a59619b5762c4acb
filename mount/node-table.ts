/**
 * The kernel's nodes and the slave paths they stand for. The kernel names files by node id
 * (libfuse's low-level API); the agent by path. A node is one slave inode: its links (parent
 * node, name) give its paths, so hard links share one node and the kernel sees one inode, whose
 * attributes and link count change at once through every name.
 *
 * Node ids are ours, never reused within a mount, and mean paths, not agent handles: they
 * survive an agent restart. A node lives while the kernel holds lookups of it (forget), and
 * loses its links when its names go (unlink, rename over it); one without links is a file
 * unlinked while open, reached by its handle only.
 */
import { S_IFDIR, S_IFMT, type Attr } from '../protocol/index.js';

export const ROOT_NODE = 1;
/** The inode number of a node the mount made before the slave said its real one. */
export const PROVISIONAL_INO = 0;

export interface FsNode {
  readonly id: number;
  /** The slave's inode number, as last seen. */
  ino: number;
  isDir: boolean;
  /** How many lookups the kernel holds (its nlookup). The root's never runs out. */
  lookups: number;
  /** (parent, name) pairs; the first names the node's path. */
  links: { parent: FsNode; name: string }[];
  /** The path, as of the table's `epoch`. */
  path?: string;
  epoch: number;
}

const key = (parent: FsNode, name: string) => `${parent.id}/${name}`;

export class NodeTable {
  private readonly byId = new Map<number, FsNode>();
  private readonly byLink = new Map<string, FsNode>();
  /** Inodes with several links, so a lookup through another name finds the same node. */
  private readonly byIno = new Map<number, FsNode>();
  private nextId = ROOT_NODE + 1;
  /** Moves when a rename changes paths below a node: cached paths older than it recompute. */
  private epoch = 0;
  readonly root: FsNode;

  constructor() {
    this.root = { id: ROOT_NODE, ino: 0, isDir: true, lookups: 1, links: [], path: '/', epoch: Number.MAX_SAFE_INTEGER };
    this.byId.set(ROOT_NODE, this.root);
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: number): FsNode | undefined {
    return this.byId.get(id);
  }

  /**
   * The node's path on the slave: its first name whose directory still has one (a name in a
   * directory since removed or replaced by someone else names nothing); null once none is left.
   */
  pathOf(node: FsNode): string | null {
    if (node === this.root) return '/';
    if (node.path !== undefined && node.epoch === this.epoch) return node.path;
    for (const link of node.links) {
      const path = this.linkPath(link);
      if (path === null) continue;
      node.path = path;
      node.epoch = this.epoch;
      return path;
    }
    return null;
  }

  /**
   * The node's paths other than `path` (hard links): one of them may be where a caller can reach
   * it when `path` is closed to them (a directory on its way), or gone.
   */
  otherPaths(node: FsNode, path: string): string[] {
    const paths: string[] = [];
    for (const link of node.links) {
      const other = this.linkPath(link);
      if (other !== null && other !== path) paths.push(other);
    }
    return paths;
  }

  /** `path` no longer names `node` on the slave (someone else removed it): the node keeps its other names. */
  nameGone(node: FsNode, path: string): void {
    const link = node.links.find((l) => this.linkPath(l) === path);
    if (link) this.unlinkName(link.parent, link.name);
  }

  /** The path one link gives; null once its parent's names are gone. */
  private linkPath(link: { parent: FsNode; name: string }): string | null {
    const parent = this.pathOf(link.parent);
    if (parent === null) return null;
    return parent === '/' ? `/${link.name}` : `${parent}/${link.name}`;
  }

  child(parent: FsNode, name: string): FsNode | undefined {
    return this.byLink.get(key(parent, name));
  }

  /** The node a path names, through known links only. */
  find(path: string): FsNode | undefined {
    let node: FsNode | undefined = this.root;
    for (const name of path.split('/')) {
      if (name === '') continue;
      node = this.child(node, name);
      if (!node) return undefined;
    }
    return node;
  }

  /**
   * The node for `name` in `parent` with attributes `attr`, counting one kernel lookup of it: the
   * known node when it is still the same inode, the node of another link of the same inode, or a
   * new one (a name that now means another inode gets a new node: the kernel would refuse an
   * inode whose type changed under the same id).
   */
  looked(parent: FsNode, name: string, attr: Attr, count = 1): FsNode {
    const isDir = (attr.mode & S_IFMT) === S_IFDIR;
    let node = this.child(parent, name);
    if (node && node.isDir === isDir) this.learnIno(node, attr);
    if (node && (node.ino !== attr.ino || node.isDir !== isDir)) {
      this.unlinkName(parent, name);
      node = undefined;
    }
    if (!node && !isDir && attr.nlink > 1) {
      node = this.byIno.get(attr.ino);
      if (node && node.isDir) node = undefined;
      if (node) this.addLink(node, parent, name);
    }
    if (!node) {
      node = { id: this.nextId++, ino: attr.ino, isDir, lookups: 0, links: [], epoch: -1 };
      this.byId.set(node.id, node);
      this.addLink(node, parent, name);
    }
    if (!isDir && attr.nlink > 1) this.byIno.set(attr.ino, node);
    node.lookups += count;
    return node;
  }

  /**
   * A node made before the slave answered has inode number PROVISIONAL_INO (no filesystem's)
   * until the slave's attributes come: then it takes theirs, as the root takes its own.
   */
  learnIno(node: FsNode, attr: Attr): void {
    if ((node.ino === PROVISIONAL_INO || node === this.root) && attr.ino !== PROVISIONAL_INO) node.ino = attr.ino;
  }

  /** A hard link made through the mount: `node` gains the name, and the kernel a lookup of it. */
  linked(node: FsNode, parent: FsNode, name: string, attr: Attr): FsNode {
    this.learnIno(node, attr);
    if (node.ino !== attr.ino) return this.looked(parent, name, attr);
    this.unlinkName(parent, name);
    this.addLink(node, parent, name);
    this.byIno.set(attr.ino, node);
    node.lookups++;
    return node;
  }

  private addLink(node: FsNode, parent: FsNode, name: string): void {
    node.links.push({ parent, name });
    this.byLink.set(key(parent, name), node);
  }

  /** The name is gone from the slave (unlink, rmdir, or replaced by a rename). */
  unlinkName(parent: FsNode, name: string): FsNode | undefined {
    const k = key(parent, name);
    const node = this.byLink.get(k);
    if (!node) return undefined;
    this.byLink.delete(k);
    const at = node.links.findIndex((l) => l.parent === parent && l.name === name);
    if (at >= 0) node.links.splice(at, 1);
    // Whichever name gave the node's path (pathOf skips names in directories gone), and the paths
    // of everything below a directory, are worked out again.
    if (at >= 0) this.epoch++;
    if (node.links.length === 0 && this.byIno.get(node.ino) === node) this.byIno.delete(node.ino);
    return node;
  }

  /**
   * Someone else (another master, a process on the slave) made `name` in `parent` mean another
   * inode or none. A node with other names drops this one, so that its path is one that still
   * holds: its first name removed on the slave, a hard link's other names were ENOENT for as long
   * as the kernel kept the node. A node known by this name alone keeps it: the kernel may hold it
   * as a working directory or an open file, and its next lookup of the name finds what the name
   * means now (`looked` compares the inode).
   */
  otherNameChanged(parent: FsNode, name: string): void {
    const node = this.child(parent, name);
    if (!node || node.links.length < 2) return;
    if (node.links.some((l) => (l.parent !== parent || l.name !== name) && this.linkPath(l) !== null)) this.unlinkName(parent, name);
  }

  /** A rename on the slave: the name moves, and with it every path below it. */
  renamed(parent: FsNode, name: string, newParent: FsNode, newName: string): void {
    this.unlinkName(newParent, newName);
    const k = key(parent, name);
    const node = this.byLink.get(k);
    if (!node) return;
    this.byLink.delete(k);
    const link = node.links.find((l) => l.parent === parent && l.name === name);
    if (link) {
      link.parent = newParent;
      link.name = newName;
    }
    this.byLink.set(key(newParent, newName), node);
    this.epoch++;
  }

  /** renameat2's RENAME_EXCHANGE: the nodes at the two names swapped places (either may be unknown). */
  exchanged(parent: FsNode, name: string, newParent: FsNode, newName: string): void {
    const [a, b] = [key(parent, name), key(newParent, newName)];
    const [first, second] = [this.byLink.get(a), this.byLink.get(b)];
    this.byLink.delete(a);
    this.byLink.delete(b);
    const move = (node: FsNode | undefined, fromParent: FsNode, fromName: string, toParent: FsNode, toName: string) => {
      if (!node) return;
      const link = node.links.find((l) => l.parent === fromParent && l.name === fromName);
      if (link) {
        link.parent = toParent;
        link.name = toName;
      }
      this.byLink.set(key(toParent, toName), node);
    };
    move(first, parent, name, newParent, newName);
    move(second, newParent, newName, parent, name);
    this.epoch++;
  }

  /** The kernel forgot `count` lookups of the node; at none it goes. */
  forget(id: number, count: number): void {
    const node = this.byId.get(id);
    if (!node || node === this.root) return;
    node.lookups -= count;
    if (node.lookups > 0) return;
    this.byId.delete(id);
    for (const { parent, name } of node.links) {
      const k = key(parent, name);
      if (this.byLink.get(k) === node) this.byLink.delete(k);
    }
    if (this.byIno.get(node.ino) === node) this.byIno.delete(node.ino);
    node.links = [];
  }

  /** Every node (the root first): what a full invalidation walks. */
  nodes(): IterableIterator<FsNode> {
    return this.byId.values();
  }
}
