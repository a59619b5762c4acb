/**
 * The slave's change feed, end to end: a real agent and its native watcher, a real nats-server,
 * and the master's ChangeFeed (transport/change-feed.ts). Changes are made by processes on the
 * slave (this machine, in the agent's export root), never through the agent. Every suite runs
 * in both watch modes: auto (fanotify here, when the tests run as root) and inotify.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readFile, readdir, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { nameFromBytes } from '../../protocol/index.js';
import { ProcessClient } from '../../sidecar/remote-process.js';
import { AgentClient } from '../../transport/agent-client.js';
import { connectBus, type Bus } from '../../transport/bus.js';
import { ChangeFeed, type SlaveChange } from '../../transport/change-feed.js';
import { waitFor } from '../helpers/processes.js';
import { startAgentProcess, startBareAgent, type AgentProcess, type BareAgent } from '../helpers/slave.js';
import { WATCH_MODES, expectedFeedMode, watchModeArgs, watcherPid, withSmallQueues } from '../helpers/watch-modes.js';

const log = pino({ level: 'silent' });

/** Collects what a feed hands over, and waits for what a test expects. */
class Seen {
  readonly changes: { at: number; change: SlaveChange }[] = [];
  readonly lost: string[] = [];
  readonly states: string[] = [];

  constructor(readonly feed: ChangeFeed) {
    feed.onChanges((changes) => { for (const change of changes) this.changes.push({ at: performance.now(), change }); });
    feed.onLost((reason) => this.lost.push(reason));
    feed.onState((state) => this.states.push(state));
  }

  /** Waits for a change of `name` in `dir` of `kind` (or of any of `kind`'s list); resolves when it came. */
  async change(dir: string, name: string | null, kind: string | readonly string[], timeoutMs = 2000): Promise<number> {
    const kinds: readonly string[] = typeof kind === 'string' ? [kind] : kind;
    let found: { at: number } | undefined;
    await waitFor(`change ${dir} ${name} ${kinds.join('|')}`, () => {
      found = this.changes.find(({ change }) => change.dir === dir && change.name === name && kinds.includes(change.kind));
      return found !== undefined;
    }, timeoutMs, 2);
    return (found as { at: number }).at;
  }

  has(dir: string, name: string | null, kind: string): boolean {
    return this.changes.some(({ change }) => change.dir === dir && change.name === name && change.kind === kind);
  }
}

for (const mode of WATCH_MODES) describe(`change feed (--watch-mode ${mode})`, () => {
  let slave: BareAgent;
  let bus: Bus;
  let client: AgentClient;
  let feed: ChangeFeed;
  let seen: Seen;

  before(async () => {
    slave = await startBareAgent({ id: 'feed-slave', agentArgs: watchModeArgs(mode), prepare: async (root) => { await mkdir(join(root, 'd')); } });
    bus = await connectBus({ url: slave.nats.url, name: 'test', log });
    client = new AgentClient(bus, 'feed-slave', { timeoutMs: 5000, log });
    feed = await ChangeFeed.open(bus, 'feed-slave', log);
    seen = new Seen(feed);
  });
  after(async () => {
    await feed?.close();
    await bus?.close();
    await slave?.stop();
  });

  it('is live, and says so in hello and stats', async () => {
    assert.equal(feed.state, 'live');
    const expected = await expectedFeedMode(mode);
    assert.equal((await client.hello()).changes, expected);
    assert.equal((await client.call('agent.stats', {})).changes?.mode, expected);
    assert.ok((await client.hello()).capabilities.includes('fs.changes'));
  });

  it('reports a file a slave process creates in a listed directory within 100 ms', async () => {
    await client.call('fs.readdir', { path: '/d' });
    const made = performance.now();
    execFileSync('touch', [join(slave.root, 'd', 'new-file')]);
    const at = await seen.change('/d', 'new-file', 'entry');
    assert.ok(at - made < 100, `seen after ${(at - made).toFixed(1)} ms`);
  });

  it('watches the parent of a path a request names, and tells entry from attr changes', async () => {
    await mkdir(join(slave.root, 'k'));
    await writeFile(join(slave.root, 'k', 'f'), 'one');
    await client.call('fs.getattr', { path: '/k/f' });
    await writeFile(join(slave.root, 'k', 'f'), 'two'); // same inode, new data
    await seen.change('/k', 'f', 'attr');
    await chmod(join(slave.root, 'k', 'f'), 0o600);
    const before = seen.changes.length;
    await seen.change('/k', 'f', 'attr');
    await rename(join(slave.root, 'k', 'f'), join(slave.root, 'k', 'g'));
    await seen.change('/k', 'g', 'entry');
    assert.ok(seen.changes.slice(before).some(({ change }) => change.name === 'f' && change.kind === 'entry'), 'the old name is an entry change');
    await unlink(join(slave.root, 'k', 'g'));
    await waitFor('unlink reported', () => seen.changes.filter(({ change }) => change.name === 'g' && change.kind === 'entry').length >= 2, 2000, 2);
  });

  it('reports the slave\'s changes in a directory a request made, once a request names it', async () => {
    // fanotify: covered from its mkdir on, without asking the watcher; inotify: watched then.
    await client.call('fs.mkdir', { path: '/d/made', mode: 0o755 });
    await client.call('fs.mkdir', { path: '/d/made/deeper', mode: 0o755 });
    await client.call('fs.getattr', { path: '/d/made/deeper/none' }).catch(() => undefined);
    execFileSync('touch', [join(slave.root, 'd', 'made', 'deeper', 'by-slave')]);
    await seen.change('/d/made/deeper', 'by-slave', 'entry');
    execFileSync('chmod', ['700', join(slave.root, 'd', 'made', 'deeper', 'by-slave')]);
    await seen.change('/d/made/deeper', 'by-slave', 'attr');
  });

  it('keeps a master\'s own changes from coming back to it (fanotify), never another\'s or the slave\'s', async () => {
    // Two masters on one bus: A's feed skips what A made, and must still hear B and the slave.
    const clientB = new AgentClient(bus, 'feed-slave', { timeoutMs: 5000, log });
    const feedA = await ChangeFeed.open(bus, 'feed-slave', log, { ownOrigin: client.origin });
    const seenA = new Seen(feedA);
    try {
      await client.call('fs.readdir', { path: '/d' });
      const own = await expectedFeedMode(mode) === 'fanotify';
      for (let i = 0; i < 5; i++) {
        await client.call('fs.mkdir', { path: `/d/by-a-${i}`, mode: 0o755 });
        const made = await client.call('fs.create', { path: `/d/by-a-${i}/f`, flags: 0o101, mode: 0o644 });
        await client.call('fs.write', { fh: made.fh, offset: 0, data: Buffer.from('a') });
        await client.call('fs.release', { fh: made.fh });
        await client.call('fs.rename', { from: `/d/by-a-${i}/f`, to: `/d/by-a-${i}/g` });
        await client.call('fs.mkdir', { path: `/d/by-b-${i}`, mode: 0o755 });
        await clientB.call('fs.chmod', { path: `/d/by-a-${i}/g`, mode: 0o600 });
        execFileSync('touch', [join(slave.root, 'd', `by-slave-${i}`)]);
        // B's change to a name A changed a moment ago is B's, and reaches A: as an attribute
        // change, or as an entry change (which makes a master look the name up again, attributes
        // and all) where fanotify merged B's chmod into the event of A's rename to that name.
        await seenA.change(`/d/by-a-${i}`, 'g', ['attr', 'entry']);
        await seenA.change('/d', `by-slave-${i}`, 'entry');
        // What A did is in the feed (the other feed, which skips nothing, saw it) ...
        await seen.change('/d', `by-a-${i}`, 'entry');
        await seen.change(`/d/by-a-${i}`, 'f', 'entry');
        const { seq } = await client.call('fs.changes', {});
        await feedA.applied(seq, 2000);
        // ... and reaches A only where the agent cannot tell who made it.
        assert.equal(seenA.has('/d', `by-a-${i}`, 'entry'), !own, `A's mkdir ${i} handed to A`);
        assert.equal(seenA.has(`/d/by-a-${i}`, 'f', 'entry'), !own, `A's rename ${i} handed to A`);
      }
    } finally {
      await feedA.close();
    }
  });

  it('names a file that is not UTF-8 by its bytes: the surrogateescape name, as readdir gives it', async () => {
    await client.call('fs.readdir', { path: '/d' });
    const bytes = Buffer.from([0x61, 0xff, 0x62]); // b'a\xffb'
    const name = nameFromBytes(bytes);
    await writeFile(Buffer.concat([Buffer.from(`${join(slave.root, 'd')}/`), bytes]), 'x');
    await seen.change('/d', name, 'entry');
    assert.equal(name, 'a\udcffb');
    const listed = await client.call('fs.readdir', { path: '/d' });
    assert.ok(listed.entries.some(([entry]) => entry === name), 'readdir gives the same name');
  });

  it('fs.changes answers a seq that covers a change made just before it', async () => {
    await client.call('fs.readdir', { path: '/d' });
    for (let i = 0; i < 20; i++) {
      await writeFile(join(slave.root, 'd', `barrier-${i}`), 'x');
      const { seq, state } = await client.call('fs.changes', {});
      assert.equal(state, 'live');
      await feed.applied(seq, 2000);
      assert.ok(seen.has('/d', `barrier-${i}`, 'entry'), `barrier-${i} applied by seq ${seq}`);
    }
    assert.deepEqual(seen.lost, []);
  });

  it('a process\'s exit event carries a changeSeq covering what it wrote', async () => {
    await client.call('fs.readdir', { path: '/d' });
    const procs = new ProcessClient(client, log);
    try {
      for (let i = 0; i < 5; i++) {
        const proc = await procs.spawn({
          argv: ['sh', '-c', `echo hi > proc-${i} && chmod 600 proc-${i}`], env: {}, cwd: '/d', pty: null,
        }, { stdout: (_d, written) => written(), stderr: (_d, written) => written() });
        const status = await proc.exited;
        assert.equal(status.code, 0);
        assert.equal(typeof status.changeSeq, 'number');
        await feed.applied(status.changeSeq as number, 2000);
        assert.ok(seen.has('/d', `proc-${i}`, 'entry') && seen.has('/d', `proc-${i}`, 'attr'), `proc-${i} applied by ${status.changeSeq}`);
      }
    } finally {
      procs.close();
    }
    assert.deepEqual(seen.lost, []);
  });

  it('a removed watched directory makes masters forget it', async () => {
    await mkdir(join(slave.root, 'gone'));
    await client.call('fs.readdir', { path: '/gone' });
    execFileSync('rmdir', [join(slave.root, 'gone')]);
    await seen.change('/', 'gone', 'entry');
    await seen.change('/gone', null, 'entry');
  });

  it('reports a directory through the path requests name: through a symlink, and on another filesystem mounted inside', async () => {
    await mkdir(join(slave.root, 'real'));
    await symlink('real', join(slave.root, 'link'));
    await client.call('fs.readdir', { path: '/link' });
    execFileSync('touch', [join(slave.root, 'real', 'via-link')]);
    await seen.change('/link', 'via-link', 'entry');
    const inside = join(slave.root, 'tmpfs');
    await mkdir(inside);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'splitbrain-test', inside]);
    try {
      await client.call('fs.readdir', { path: '/tmpfs' });
      execFileSync('touch', [join(inside, 'on-tmpfs')]);
      await seen.change('/tmpfs', 'on-tmpfs', 'entry');
    } finally {
      execFileSync('umount', ['-l', inside]);
    }
  });

  it('in fanotify mode watches no directory with inotify but those it must', async () => {
    if (await expectedFeedMode(mode) !== 'fanotify') return;
    const before = (await client.call('agent.stats', {})).changes?.watches ?? 0;
    await mkdir(join(slave.root, 'plain', 'deeper'), { recursive: true });
    await client.call('fs.readdir', { path: '/plain/deeper' });
    execFileSync('touch', [join(slave.root, 'plain', 'deeper', 'x')]);
    await seen.change('/plain/deeper', 'x', 'entry');
    execFileSync('mv', [join(slave.root, 'plain'), join(slave.root, 'moved')]);
    await seen.change('/', 'plain', 'entry');
    await seen.change('/plain', null, 'entry'); // forget what was cached below the old name
    execFileSync('touch', [join(slave.root, 'moved', 'deeper', 'y')]);
    await seen.change('/moved/deeper', 'y', 'entry'); // the new path: the handle cache forgot
    assert.equal((await client.call('agent.stats', {})).changes?.watches, before);
  });

  it('a burst of slave changes arrives whole under the barrier, read in batches, not one wakeup per change', async () => {
    const dir = join(slave.root, 'burst');
    await mkdir(dir);
    await client.call('fs.readdir', { path: '/burst' });
    const watcher = await watcherPid(slave.agent);
    const wakeups = async () => {
      const status = await readFile(`/proc/${watcher}/status`, 'utf8');
      return Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)?.[1]);
    };
    const files = 500;
    const renames = 20000;
    const before = await wakeups();
    const started = performance.now();
    // One process changes the directory as fast as it can, as a build or an untar on the slave
    // would: files made and written, then renamed back and forth (two changes a rename).
    execFileSync('python3', ['-c', [
      'import os, sys',
      'd = sys.argv[1]',
      `for i in range(${files}): open(os.path.join(d, 'f%d' % i), 'w').write('x')`,
      `for i in range(${renames / 2}):`,
      '  os.rename(os.path.join(d, "f0"), os.path.join(d, "g0")); os.rename(os.path.join(d, "g0"), os.path.join(d, "f0"))',
    ].join('\n'), dir]);
    const burstMs = performance.now() - started;
    const { seq } = await client.call('fs.changes', {});
    await feed.applied(seq, 5000);
    const woken = (await wakeups()) - before;
    for (let i = 0; i < files; i++) assert.ok(seen.has('/burst', `f${i}`, 'entry'), `f${i} reported`);
    assert.ok(seen.has('/burst', 'g0', 'entry'), 'the renamed name reported');
    // Read as they came, the watcher woke for most changes (12-13 thousand times here); paced,
    // about once a millisecond of the burst (0.7-0.8 thousand), however slow the machine.
    assert.ok(woken < Math.max(renames / 5, 2 * burstMs), `the watcher woke ${woken} times for ${files * 3 + renames * 2} changes in ${burstMs.toFixed(0)} ms`);
    assert.deepEqual(seen.lost, []);
  });

  it('a watcher that dies is a loss: degraded, restarted, then live again', async () => {
    const lostBefore = seen.lost.length;
    process.kill(await watcherPid(slave.agent), 'SIGKILL');
    await waitFor('lost', () => seen.lost.slice(lostBefore).some((r) => r.includes('restart')), 3000, 5);
    assert.ok(seen.states.includes('degraded'));
    await waitFor('live again', () => feed.state === 'live', 5000, 5);
    await client.call('fs.readdir', { path: '/d' });
    execFileSync('touch', [join(slave.root, 'd', 'after-restart')]);
    await seen.change('/d', 'after-restart', 'entry');
  });
});

describe('change feed limits', () => {
  let slave: BareAgent;
  let bus: Bus;

  before(async () => {
    slave = await startBareAgent({
      id: 'feed-limits',
      // Eviction is of inotify watches: fanotify mode has none to evict here.
      agentArgs: ['--watch-max', '2', '--watch-mode', 'inotify'],
      prepare: async (root) => { for (const d of ['a', 'b', 'c', 'o']) await mkdir(join(root, d)); },
    });
    bus = await connectBus({ url: slave.nats.url, name: 'test', log });
  });
  after(async () => {
    await bus?.close();
    await slave?.stop();
  });

  it('evicts the least recently used watch past --watch-max, and says to forget that directory', async () => {
    const client = new AgentClient(bus, 'feed-limits', { timeoutMs: 5000, log });
    const feed = await ChangeFeed.open(bus, 'feed-limits', log);
    const seen = new Seen(feed);
    try {
      await client.call('fs.readdir', { path: '/a' }); // watches /a and /
      await client.call('fs.getattr', { path: '/a/x' }).catch(() => undefined);
      await client.call('fs.readdir', { path: '/b' }); // / is used again, /a is the oldest
      await seen.change('/a', null, 'entry');
      assert.equal((await client.call('agent.stats', {})).changes?.watches, 2);
      execFileSync('touch', [join(slave.root, 'b', 'seen')]);
      await seen.change('/b', 'seen', 'entry');
      assert.deepEqual(seen.lost, []);
    } finally {
      await feed.close();
    }
  });

  for (const mode of WATCH_MODES) it(`a queue overflow is a loss: degraded, then live again, and changes flow after (--watch-mode ${mode})`, async () => {
    const id = `feed-overflow-${mode}`;
    const agent: AgentProcess = await withSmallQueues(() => startAgentProcess(slave.nats.url, id, slave.root, watchModeArgs(mode)));
    const client = new AgentClient(bus, id, { timeoutMs: 5000, log });
    assert.equal((await client.hello()).changes, await expectedFeedMode(mode));
    const feed = await ChangeFeed.open(bus, id, log);
    const seen = new Seen(feed);
    try {
      await client.call('fs.readdir', { path: '/o' });
      const watcher = await watcherPid(agent);
      process.kill(watcher, 'SIGSTOP');
      try {
        for (let i = 0; i < 100; i++) await writeFile(join(slave.root, 'o', `f${i}`), 'x');
      } finally {
        process.kill(watcher, 'SIGCONT');
      }
      await waitFor('overflow reported', () => seen.lost.some((r) => r.includes('overflow')), 3000, 5);
      assert.ok(seen.states.includes('degraded'), `states: ${seen.states.join(',')}`);
      await waitFor('live again', () => feed.state === 'live', 3000, 5);
      await client.call('fs.readdir', { path: '/o' }); // watched again
      execFileSync('touch', [join(slave.root, 'o', 'after')]);
      await seen.change('/o', 'after', 'entry');
      assert.equal((await readdir(join(slave.root, 'o'))).length, 101);
      await rm(join(slave.root, 'o'), { recursive: true });
      await mkdir(join(slave.root, 'o'));
    } finally {
      await feed.close();
      await agent.stop();
    }
  });

  it('without its watcher binary the agent serves with the feed off', async () => {
    const agent = await startAgentProcess(slave.nats.url, 'feed-off', slave.root, ['--watch-helper', join(slave.tmp, 'no-such-watcher')]);
    const client = new AgentClient(bus, 'feed-off', { timeoutMs: 5000, log });
    const feed = await ChangeFeed.open(bus, 'feed-off', log);
    try {
      assert.equal(feed.state, 'off');
      assert.equal((await client.hello()).changes, 'off');
      assert.equal((await client.call('fs.changes', {})).state, 'off');
      const listed = await client.call('fs.readdir', { path: '/a' });
      assert.ok(Array.isArray(listed.entries));
      assert.match(agent.log(), /no change feed/);
    } finally {
      await feed.close();
      await agent.stop();
    }
  });
});
