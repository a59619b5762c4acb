/**
 * Issue 15: splitbrain on a NATS cluster with a leaf node, as a test farm runs it: three
 * clustered servers for the masters, a leaf node for a lab whose agent connects to it. Servers
 * are killed (SIGKILL) and started again while a mount and a streaming command are busy: nothing
 * may be lost, and nothing may fail. Also: one agent per id anywhere on the bus, and `status`
 * listing agents on both sides with the server each is connected to.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBridgeProcess, type BridgeProcess } from '../helpers/bridge.js';
import { startCluster, leafHub, type ClusterServer, type NatsCluster } from '../helpers/nats-cluster.js';
import { CLI, run, waitFor } from '../helpers/processes.js';
import { startAgentProcess, startMountProcess, type AgentProcess, type MountProcess } from '../helpers/slave.js';

const BIG = 256 * 1024 * 1024;

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every path under `dir`, relative, sorted: a tree as `find | sort` shows it. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (at: string) => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      out.push(relative(dir, path));
      if (entry.isDirectory()) await walk(path);
    }
  };
  await walk(dir);
  return out.sort();
}

/** The hub a client named `name` is connected to now, by the hubs' monitoring (/connz). */
async function hubOf(cluster: NatsCluster, name: string): Promise<ClusterServer | undefined> {
  for (const hub of cluster.hubs) {
    try {
      const res = await fetch(`http://127.0.0.1:${hub.monitorPort}/connz?limit=1024`);
      const connz = (await res.json()) as { connections?: { name?: string }[] };
      if (connz.connections?.some((c) => c.name === name)) return hub;
    } catch {
      // a hub that is down has nobody
    }
  }
  return undefined;
}

describe('on a NATS cluster with a leaf node (agents on the leaf, masters on the cluster)', () => {
  let tmp: string;
  let cluster: NatsCluster;
  let agent: AgentProcess;
  let ciAgent: AgentProcess;
  let mount: MountProcess;
  let bridge: BridgeProcess;
  let root: string;
  let mnt: string;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'splitbrain-cluster-'));
    cluster = await startCluster(tmp);
    root = join(tmp, 'root');
    mnt = join(tmp, 'mnt');
    await mkdir(root);
    await mkdir(mnt);
    await mkdir(join(tmp, 'ci-root'));
    agent = await startAgentProcess(cluster.leaf.url, 'lab-board', root);
    ciAgent = await startAgentProcess(cluster.hubs[0]?.url ?? '', 'ci-runner', join(tmp, 'ci-root'));
    mount = await startMountProcess(cluster.hubUrls, mnt, ['--agent', 'lab-board', '--log-level', 'info']);
    bridge = await startBridgeProcess(cluster.hubUrls, 'lab-board', join(tmp, 'bridge.sock'), join(tmp, 'bin'), ['--command', 'cat']);
  });
  after(async () => {
    await bridge?.stop();
    await mount?.stop();
    await agent?.stop();
    await ciAgent?.stop();
    await cluster?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it('loses nothing while the leaf\'s hub and then the master\'s hub are killed and started again', async () => {
    // The slave's tree: a few hundred entries for find, and 256 MiB to copy and to stream.
    const expected: string[] = [];
    for (let d = 0; d < 20; d++) {
      await mkdir(join(root, 'tree', `d${d}`), { recursive: true });
      for (let f = 0; f < 10; f++) await writeFile(join(root, 'tree', `d${d}`, `f${f}`), `${d}/${f}`);
    }
    await run('sh', ['-c', `head -c ${BIG} /dev/urandom > '${join(root, 'big')}'`], { timeoutMs: 60_000 });
    const bigSum = await sha256File(join(root, 'big'));
    expected.push(...await tree(root));

    // Commands on the slave stream the file to us, hashed here as sha256sum would: one through
    // the bridge's shim (as a test in a container runs it), one by `splitbrain exec`. (A process
    // on the slave sees the slave's own filesystem, where the export root is `root`.)
    const streams = [
      { what: 'the bridged command', argv: [join(bridge.shimDir, 'cat'), join(root, 'big')], env: { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: bridge.socket } },
      { what: 'splitbrain exec', argv: [process.execPath, CLI, 'exec', cluster.hubUrls, '--agent', 'lab-board', '-n', '--', 'cat', join(root, 'big')], env: process.env },
    ].map(({ what, argv, env }) => {
      const hash = createHash('sha256');
      const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
      const stream = { what, child, hash, bytes: 0, stderr: '', done: new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code))) };
      child.stdout.on('data', (d: Buffer) => {
        hash.update(d);
        stream.bytes += d.length;
      });
      child.stderr.on('data', (d: Buffer) => { stream.stderr += d.toString(); });
      return stream;
    });
    const copy = run('cp', [join(mnt, 'big'), join(mnt, 'copy')], { timeoutMs: 300_000 });
    let finds = 0;
    let stop = false;
    const walker = (async () => {
      while (!stop) {
        const found = await run('find', [join(mnt, 'tree')], { timeoutMs: 120_000 });
        assert.equal(found.code, 0, found.stderr);
        assert.equal(found.stdout.trim().split('\n').length, 1 + 20 + 200);
        finds++;
      }
    })();

    try {
      // The servers fail while all of that runs: once the output streams and the copy has begun.
      await waitFor('the commands streaming and the copy begun', async () => streams.every((st) => st.bytes > 16 << 20)
        && (await stat(join(root, 'copy')).then((st) => st.size > 16 << 20, () => false)), 60_000, 20);
      const leafSide = await leafHub(cluster);
      assert.ok(leafSide, 'the leaf node is connected to a hub');
      await leafSide.kill();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await leafSide.start();
      const masterSide = await hubOf(cluster, 'splitbrain-mount');
      assert.ok(masterSide, 'the mount is connected to a hub');
      await masterSide.kill();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await masterSide.start();

      const copied = await copy;
      assert.equal(copied.code, 0, copied.stderr);
      for (const st of streams) assert.equal(await st.done, 0, `${st.what}: ${st.stderr}`);
    } finally {
      stop = true;
      for (const st of streams) if (st.child.exitCode === null) st.child.kill('SIGKILL');
      await walker.catch(() => undefined); // its own failures are asserted below
      await copy.catch(() => undefined);
    }
    await walker;
    assert.ok(finds > 0);
    for (const st of streams) assert.equal(st.hash.digest('hex'), bigSum, `the output of ${st.what} is whole`);
    assert.equal(await sha256File(join(root, 'copy')), bigSum, 'the copy on the slave is whole');
    assert.equal(await sha256File(join(mnt, 'copy')), bigSum, 'and reads back whole through the mount');
    assert.deepEqual(await tree(root), [...expected, 'copy'].sort());
    assert.match(mount.log(), /"event":"reconnect"/, 'the mount moved to another server');
    await cluster.settled();
  });

  it('refuses a second agent with an id that is served anywhere on the bus; the first keeps serving', async () => {
    const second = await run(process.execPath, [CLI, 'agent', '--nats', cluster.hubs[1]?.url ?? '', '--id', 'lab-board', '--root', join(tmp, 'ci-root')],
      { timeoutMs: 30_000 });
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /agent id 'lab-board' is already served on this bus, by pid \d+/);
    const marker = randomBytes(8).toString('hex');
    await writeFile(join(mnt, 'still-served'), marker);
    assert.equal((await run('cat', [join(root, 'still-served')])).stdout, marker);
    assert.equal(agent.child.exitCode, null);
  });

  it('keeps one of two agents started at the same moment with one id, on two servers: the other exits 1', async () => {
    const twin = (url: string) => spawn(process.execPath, [CLI, 'agent', '--nats', url, '--id', 'twin', '--root', join(tmp, 'ci-root')],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    const twins = [twin(cluster.hubs[1]?.url ?? ''), twin(cluster.leaf.url)];
    const said = twins.map((child) => {
      let text = '';
      child.stderr?.on('data', (d: Buffer) => { text += d.toString(); });
      return () => text;
    });
    try {
      await waitFor('one twin to give up', () => twins.some((t) => t.exitCode !== null), 20_000, 50);
      await new Promise((resolve) => setTimeout(resolve, 1500)); // the other must not follow
      const gone = twins.filter((t) => t.exitCode !== null);
      assert.equal(gone.length, 1, said.map((s) => s()).join('\n'));
      assert.equal(gone[0]?.exitCode, 1);
      assert.match(said[twins.indexOf(gone[0] as typeof twins[number])]?.() ?? '', /agent id 'twin' is already served on this bus/);
      const hello = await run(process.execPath, [CLI, 'hello', cluster.hubUrls, '--agent', 'twin', '--field', 'agentId'], { timeoutMs: 30_000 });
      assert.equal(hello.stdout, 'twin\n', hello.stderr);
    } finally {
      for (const t of twins) if (t.exitCode === null) t.kill('SIGTERM');
      await Promise.all(twins.map((t) => (t.exitCode === null ? once(t, 'exit') : undefined)));
    }
  });

  it('lists the agents of the leaf node and of the cluster, with the server each is connected to', async () => {
    let seen = '';
    await waitFor('both agents listed', async () => {
      const listed = await run(process.execPath, [CLI, 'status', cluster.hubUrls, '--json'], { timeoutMs: 30_000 });
      seen = `${listed.stdout}${listed.stderr}`;
      const entries = JSON.parse(listed.stdout || '[]') as { agentId: string; hello?: { server?: { name: string } } }[];
      const servers = new Map(entries.map((e) => [e.agentId, e.hello?.server?.name]));
      // ci-runner was given hub-1 alone, but learns the cluster from it, and may have moved.
      return servers.get('lab-board') === 'leaf' && /^hub-\d$/.test(servers.get('ci-runner') ?? '');
    }, 20_000, 500).catch(async (err: unknown) => {
      const hello = await run(process.execPath, [CLI, 'hello', cluster.hubUrls, '--agent', 'lab-board'], { timeoutMs: 30_000 });
      throw new Error(`${(err as Error).message}; last status: ${seen}; hello: ${hello.stdout}${hello.stderr}`);
    });
    const table = await run(process.execPath, [CLI, 'status', cluster.hubs[2]?.url ?? ''], { timeoutMs: 30_000 });
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^lab-board\s.*\sleaf\s/m);
    assert.match(table.stdout, /^ci-runner\s.*\shub-\d\s/m);
  });
});
