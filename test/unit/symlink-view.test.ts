/**
 * How a mount shows the slave's links (mount/symlink-view.ts) against a scripted slave tree: a
 * `..` after a name is kept only where the master's kernel, following the shown links, stays
 * inside the mount; elsewhere the target shows where the slave's kernel lands. The seeded case
 * builds random trees of directories and links and follows every shown target as the master's
 * kernel would: it never leaves the mount, and lands where the slave's kernel lands.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { S_IFDIR, S_IFLNK, S_IFREG, type Attr } from '../../protocol/index.js';
import { SymlinkView, type SlaveLinks } from '../../mount/symlink-view.js';
import { SeededRandom } from '../helpers/seeded-random.js';

type Node = { kind: 'dir' } | { kind: 'file' } | { kind: 'link'; target: string };

const MNT = '/master/mnt';

function attrOf(mode: number): Attr {
  return { mode } as Attr;
}

/** A slave tree by path ('/a/b'), as the agent would answer lstat and readlink. */
class ScriptedSlave implements SlaveLinks {
  readonly asked: string[] = [];
  constructor(readonly nodes: Map<string, Node>) {
    nodes.set('/', { kind: 'dir' });
  }

  async attr(path: string): Promise<Attr | null> {
    this.asked.push(path);
    const node = this.nodes.get(path);
    if (!node) return null;
    return attrOf(node.kind === 'dir' ? S_IFDIR | 0o755 : node.kind === 'file' ? S_IFREG | 0o644 : S_IFLNK | 0o777);
  }

  async target(path: string): Promise<string> {
    const node = this.nodes.get(path);
    if (node?.kind !== 'link') throw new Error(`${path} is not a link`);
    return node.target;
  }
}

function tree(entries: [string, Node][]): ScriptedSlave {
  return new ScriptedSlave(new Map(entries));
}

const dir: Node = { kind: 'dir' };
const file: Node = { kind: 'file' };
const link = (target: string): Node => ({ kind: 'link', target });

async function shown(view: SymlinkView, slave: ScriptedSlave, path: string): Promise<string> {
  return (await view.shown(path, await slave.target(path), slave)).target;
}

describe('the symlinks a mount shows, against the slave\'s tree', () => {
  const view = new SymlinkView('translate', MNT);

  it('shows a `..` after a directory, or after a link that does not lead to the root, as stored', async () => {
    const slave = tree([
      ['/a', dir], ['/a/d', dir], ['/a/current', link('.')], ['/a/parent', link('current/..')],
      ['/a/through', link('d/../d')], ['/a/deep', link('/a/d/../current/..')],
    ]);
    assert.equal(await shown(view, slave, '/a/parent'), 'current/..');
    assert.equal(await shown(view, slave, '/a/through'), 'd/../d');
    assert.equal(await shown(view, slave, '/a/deep'), `${MNT}/a/d/../current/..`);
  });

  it('shows a `..` after a link to the root as where the slave\'s kernel lands, never above the mount', async () => {
    const slave = tree([
      ['/a', dir], ['/a/root', link('/')], ['/a/rootrel', link('..')], ['/a/mid', link('root/../x')],
      ['/a/mid2', link('rootrel/../x/')], ['/a/chain', link('mid/../y')], ['/x', dir],
    ]);
    assert.equal(await shown(view, slave, '/a/root'), MNT);
    assert.equal(await shown(view, slave, '/a/mid'), `${MNT}/x`);
    assert.equal(await shown(view, slave, '/a/mid2'), `${MNT}/x/`);
    // mid shows as MNT/x, so `..` from it is MNT: inside, as stored.
    assert.equal(await shown(view, slave, '/a/chain'), 'mid/../y');
    assert.equal(await shown(new SymlinkView('relative', MNT), slave, '/a/mid'), '../x');
  });

  it('keeps a target whose walk fails before any `..` at the root as stored (the kernel fails there too)', async () => {
    const slave = tree([
      ['/a', dir], ['/a/f', file], ['/a/l', link('nowhere/../x')], ['/a/up', link('nowhere/../../../x')],
      ['/a/notdir', link('f/../../..')], ['/a/leading', link('../../../x')],
    ]);
    assert.equal(await shown(view, slave, '/a/l'), 'nowhere/../x');
    assert.equal(await shown(view, slave, '/a/up'), 'nowhere/../../../x');
    assert.equal(await shown(view, slave, '/a/notdir'), 'f/../../..');
    // Its `..` all first: clamped, as the slave's kernel takes them, without asking.
    assert.equal(await shown(view, slave, '/a/leading'), '../x');
  });

  it('resolves lexically where there are more links on the way than the kernel follows', async () => {
    const entries: [string, Node][] = [['/a', dir], ['/a/l0', link('/')]];
    for (let i = 1; i <= 45; i++) entries.push([`/a/l${i}`, link(`l${i - 1}`)]);
    entries.push(['/a/far', link('l45/../x')]);
    assert.equal(await shown(view, tree(entries), '/a/far'), 'x');
  });

  it('asks nothing of the slave for a target without a `..` after a name, and lets the kernel keep it', async () => {
    const slave = tree([['/a', dir], ['/a/l', link('../b/c')], ['/a/abs', link('/opt/fw/v2')], ['/a/dd', link('d/../e')]]);
    for (const path of ['/a/l', '/a/abs']) {
      const answer = await view.shown(path, await slave.target(path), slave);
      assert.equal(answer.keep, true, path);
    }
    assert.deepEqual(slave.asked, []);
    assert.equal((await view.shown('/a/dd', 'd/../e', slave)).keep, false);
  });

  it('stores links to the mount\'s own paths from the slave\'s root, others as given; raw stores and shows all as given', () => {
    assert.equal(view.stored(`${MNT}/d`), '/d');
    assert.equal(view.stored(MNT), '/');
    assert.equal(view.stored(`${MNT}x/d`), `${MNT}x/d`);
    assert.equal(view.stored('/etc/hosts'), '/etc/hosts');
    assert.equal(view.stored('../x'), '../x');
    const raw = new SymlinkView('raw', MNT);
    assert.equal(raw.stored(`${MNT}/d`), `${MNT}/d`);
    // The mountpoint as a shell may spell it, through a symlink on the master.
    const aliased = new SymlinkView('translate', '/home/me/mnt', ['/data/home/me/mnt']);
    assert.equal(aliased.stored('/data/home/me/mnt/d'), '/d');
    assert.equal(aliased.stored('/home/me/mnt/d'), '/d');
    assert.equal(aliased.stored('/data/home/me/other'), '/data/home/me/other');
  });

  it('never leads the master\'s kernel out of the mount, and leads where the slave\'s kernel leads (seeded)', async () => {
    const seed = SeededRandom.seedFromEnv();
    const r = new SeededRandom(seed);
    const names = ['a', 'b', 'c'];
    const parts = [...names, '..', '..', '.', ''];
    for (let round = 0; round < 300; round++) {
      // A random tree: directories two deep, some names links to random targets.
      const nodes = new Map<string, Node>();
      const paths = ['/'];
      for (const x of names) {
        for (const y of ['', ...names]) {
          const path = y === '' ? `/${x}` : `/${x}/${y}`;
          if (y !== '' && nodes.get(`/${x}`)?.kind !== 'dir') continue;
          const roll = r.int(10);
          if (roll < 5) nodes.set(path, dir);
          else if (roll < 6) nodes.set(path, file);
          else {
            const target = (r.chance(0.3) ? '/' : '') + Array.from({ length: 1 + r.int(4) }, () => r.pick(parts)).join('/');
            nodes.set(path, link(target));
          }
          paths.push(path);
        }
      }
      const slave = new ScriptedSlave(nodes);
      for (const mode of ['translate', 'relative'] as const) {
        const shownBy = new SymlinkView(mode, MNT);
        const shownOf = async (path: string) => (await shownBy.shown(path, (nodes.get(path) as { target: string }).target, slave)).target;
        for (const [path, node] of nodes) {
          if (node.kind !== 'link') continue;
          const context = `seed ${seed}, round ${round}, ${mode}: ${path} -> ${node.target}`;
          let text: string;
          try {
            text = await shownOf(path);
          } catch (err) {
            assert.fail(`${context}: ${String(err)}`);
          }
          const onSlave = await resolve(nodes, parentOf(path), node.target, async (p) => (nodes.get(p) as { target: string }).target, false);
          const onMaster = await resolveOnMaster(nodes, parentOf(path), text, shownOf);
          assert.notEqual(onMaster, 'left', `${context}: shown ${text} leaves the mount; tree ${JSON.stringify([...nodes])}`);
          if (onSlave !== 'loops' && onMaster !== 'loops') assert.deepEqual(onMaster, onSlave, `${context}: shown ${text}`);
        }
      }
    }
  });
});

function parentOf(path: string): string[] {
  return path.split('/').filter(Boolean).slice(0, -1);
}

type Landing = string | 'fails' | 'loops' | 'left';

/**
 * Where a kernel lands following `path` from directory `from`: every link followed through
 * `readTarget`. On the slave `..` at the root stays there; on the master (`master`) it leaves.
 */
async function resolve(nodes: Map<string, Node>, from: string[], path: string, readTarget: (p: string) => Promise<string>,
  master: boolean, budget = { links: 40 }): Promise<Landing> {
  let at = path.startsWith('/') ? [] : [...from];
  const steps = path.split('/').filter((p) => p !== '' && p !== '.');
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i] as string;
    if (step === '..') {
      if (at.length === 0 && master) return 'left';
      at.pop();
      continue;
    }
    const here = `/${[...at, step].join('/')}`;
    const node = nodes.get(here);
    if (!node) return 'fails';
    if (node.kind === 'link') {
      if (--budget.links < 0) return 'loops';
      let target = await readTarget(here);
      if (master && target.startsWith('/')) {
        if (target !== MNT && !target.startsWith(`${MNT}/`)) return 'left';
        target = target.slice(MNT.length) || '/';
      }
      const landed = await resolve(nodes, at, target, readTarget, master, budget);
      if (landed === 'fails' || landed === 'loops' || landed === 'left') return landed;
      // A link on the way must lead to a directory (ENOTDIR), as any name on the way must.
      if (nodes.get(landed)?.kind === 'file') return i === steps.length - 1 ? landed : 'fails';
      at = landed === '/' ? [] : landed.slice(1).split('/');
      continue;
    }
    if (node.kind === 'file') {
      if (i === steps.length - 1) return here;
      return 'fails';
    }
    at.push(step);
  }
  return `/${at.join('/')}`;
}

function resolveOnMaster(nodes: Map<string, Node>, from: string[], shown: string, shownOf: (p: string) => Promise<string>): Promise<Landing> {
  if (!shown.startsWith('/')) return resolve(nodes, from, shown, shownOf, true);
  if (shown !== MNT && !shown.startsWith(`${MNT}/`)) return Promise.resolve('left');
  return resolve(nodes, from, shown.slice(MNT.length) || '/', shownOf, true);
}
