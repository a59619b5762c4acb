/**
 * Surviving the slave: the agent killed and started again, NATS restarted, the agent gone for a
 * while. The mount keeps running, open files are reopened, retried requests do not run twice,
 * an operation waits --slave-wait for the agent and then fails with EIO, and a process whose
 * slave went away ends with 255.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { chown, mkdir, open, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FAULT_ENV } from '../../agent/fs/commits.js';
import { AgentUnreachableError } from '../../transport/errors.js';
import { startBridgeProcess } from '../helpers/bridge.js';
import { rawClient } from '../helpers/raw-client.js';
import { CLI, run, spawnCollecting, waitFor } from '../helpers/processes.js';
import { startAgentProcess, startBareAgent, startMountProcess, type AgentProcess, type BareAgent, type MountProcess } from '../helpers/slave.js';

const HOLDER = new URL('../../../test/fixtures/held-open.py', import.meta.url).pathname;
const CHURN = new URL('../../../test/fixtures/name-churn.py', import.meta.url).pathname;
const DEVICE_HOLDER = new URL('../../../test/fixtures/held-device.py', import.meta.url).pathname;
const WRITER = new URL('../../../test/fixtures/unsynced-writer.py', import.meta.url).pathname;

/** Established TCP connections of process `pid` to anything but the NATS server at `natsUrl`: its links to the agent. */
async function linksOf(pid: number, natsUrl: string): Promise<number> {
  const natsPort = new URL(natsUrl).port;
  const out = (await run('ss', ['-Htnp', 'state', 'established'])).stdout;
  // Lines: state, queues, local address:port, peer address:port, process.
  return out.split('\n').filter((line) => line.includes(`pid=${pid},`) && /\s\S+:\d+\s+\S+:(\d+)\s/.exec(line)?.[1] !== natsPort).length;
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe('surviving the slave', () => {
  let slave: BareAgent;
  let agent: AgentProcess;
  let mount: MountProcess;
  let mnt: string;

  /** SIGKILL the agent, wait, and start it again: a crash and a restart of the slave's agent. */
  async function crashAgent(downMs: number): Promise<void> {
    agent.child.kill('SIGKILL');
    await once(agent.child, 'exit').catch(() => undefined);
    await new Promise((r) => setTimeout(r, downMs));
    agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root);
  }

  before(async () => {
    slave = await startBareAgent({ id: 'phoenix' });
    agent = slave.agent;
    mnt = join(slave.tmp, 'mnt');
    await mkdir(mnt);
    mount = await startMountProcess(slave.nats.url, mnt, ['--agent', 'phoenix', '--slave-wait', '30']);
  });
  after(async () => {
    await mount?.stop();
    await agent?.stop();
    await slave?.stop();
  });

  it('a 256 MiB cp into the mount survives the agent killed and started again 3 s later', async () => {
    const source = join(slave.tmp, 'source.bin');
    const chunk = randomBytes(1 << 20);
    await writeFile(source, Buffer.concat(Array.from({ length: 256 }, (_, i) => { chunk[0] = i; return Buffer.from(chunk); })));
    const cp = spawnCollecting('cp', [source, join(mnt, 'copy.bin')]);
    await waitFor('cp to be under way', async () => (await stat(join(slave.root, 'copy.bin')).catch(() => null))?.size !== undefined
      && ((await stat(join(slave.root, 'copy.bin'))).size > 16 << 20), 60_000, 20);
    await crashAgent(3000);
    const [code] = (await once(cp.child, 'exit')) as [number | null];
    assert.equal(code, 0, cp.stdout() + cp.stderr());
    assert.equal(await sha256(join(slave.root, 'copy.bin')), await sha256(source));
  });

  it('a file held open across a restart is read and appended to after it; ls, stat and find work without remounting', async () => {
    await writeFile(join(slave.root, 'held.txt'), 'before\n');
    const holder = spawn('python3', [HOLDER, join(mnt, 'held.txt')], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    holder.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    holder.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    await waitFor('the file to be open', () => out.includes('open'), 20_000);
    await crashAgent(1000);
    holder.stdin.end('go\n');
    const [code] = (await once(holder, 'exit')) as [number | null];
    assert.equal(code, 0, out);
    assert.match(out, /read after: before\n/);
    assert.equal(await readFile(join(slave.root, 'held.txt'), 'utf8'), 'before\nappended after the restart\n');
    const ls = await run('ls', [mnt]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /held\.txt/);
    assert.equal((await run('stat', [join(mnt, 'held.txt')])).code, 0);
    const find = await run('find', [mnt, '-name', 'held.txt']);
    assert.equal(find.stdout.trim(), join(mnt, 'held.txt'));
  });

  it('a NATS restart in the middle of 1,000 mkdir/O_EXCL create/rename/unlink leaves no spurious errno and exactly the expected tree', async () => {
    const top = join(mnt, 'churn');
    const churn = spawnCollecting('python3', [CHURN, top, '1000']);
    await waitFor('the churn to be under way', async () => (await readdir(join(slave.root, 'churn')).catch(() => [])).length > 50, 60_000, 20);
    await slave.nats.restart();
    await waitFor('the churn to be under way again', async () => (await readdir(join(slave.root, 'churn')).catch(() => [])).length > 400, 60_000, 20);
    await slave.nats.restart();
    const [code] = (await once(churn.child, 'exit')) as [number | null];
    assert.equal(code, 0, churn.stdout() + churn.stderr());
    const names = (await readdir(join(slave.root, 'churn'))).sort();
    assert.deepEqual(names, Array.from({ length: 1000 }, (_, i) => `d${String(i).padStart(4, '0')}`));
    for (let i = 0; i < 1000; i++) {
      const dir = join(slave.root, 'churn', `d${String(i).padStart(4, '0')}`);
      const inside = await readdir(dir);
      if (i % 2 === 0) {
        assert.deepEqual(inside, ['b'], dir);
        assert.equal(await readFile(join(dir, 'b'), 'utf8'), String(i));
      } else {
        assert.deepEqual(inside, [], dir);
      }
    }
  });

  it('a file open under a name removed through the mount goes on by the name it has left across a restart', async () => {
    const [first, second] = [join(mnt, 'relinked-first'), join(mnt, 'relinked-second')];
    const script = [
      'import os, sys',
      `fd = os.open("${first}", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)`,
      'os.write(fd, b"x" * 100)',
      `os.link("${first}", "${second}")`,
      `os.unlink("${first}")`,
      // A write asks the kernel's security.capability probe of the file by its name left: answered
      // now, the one below is answered from what the mount knows while the agent is stopped.
      'os.write(fd, b"z" * 10)',
      'print("ready", flush=True)',
      'sys.stdin.readline()',
      'os.write(fd, b"y" * 100)',
      'print("written", flush=True)',
      'sys.stdin.readline()',
      'os.close(fd)',
      `print("read", open("${second}", "rb").read().decode(), flush=True)`,
    ].join('\n');
    const writer = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    writer.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    writer.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      await waitFor('the first name removed', () => out.includes('ready'), 20_000);
      // Stopped, the agent takes the write and never answers it: it is sent again after the restart,
      // by a handle opened again by the file's remaining name.
      agent.child.kill('SIGSTOP');
      writer.stdin.write('\n');
      await waitFor('the write to be answered', () => out.includes('written'), 20_000);
      await new Promise((r) => setTimeout(r, 200));
      await crashAgent(500);
      writer.stdin.end('\n');
      const [code] = (await once(writer, 'exit')) as [number | null];
      assert.equal(code, 0, out);
      const written = 'x'.repeat(100) + 'z'.repeat(10) + 'y'.repeat(100);
      assert.match(out, new RegExp(`read ${written}`));
      assert.equal(await readFile(join(slave.root, 'relinked-second'), 'utf8'), written);
    } finally {
      if (writer.exitCode === null) writer.kill('SIGKILL');
      agent.child.kill('SIGCONT');
    }
  });

  it('with --slave-wait 2 and the agent gone, stat fails with EIO after about 2 s, and works once the agent is back', async () => {
    const quick = join(slave.tmp, 'quick');
    await mkdir(quick);
    const m = await startMountProcess(slave.nats.url, quick, ['--agent', 'phoenix', '--slave-wait', '2']);
    try {
      await agent.stop();
      const started = Date.now();
      const gone = await run('stat', [join(quick, `never-seen-${randomBytes(4).toString('hex')}`)]);
      const waited = Date.now() - started;
      assert.notEqual(gone.code, 0);
      assert.match(gone.stderr, /Input\/output error/);
      assert.ok(waited >= 1500 && waited < 15_000, `failed after ${waited} ms`);
      agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root);
      const back = await run('stat', [join(quick, 'held.txt')]);
      assert.equal(back.code, 0, back.stderr);
    } finally {
      await m.stop();
    }
  });

  it('closing our own connection fails what still waits for a frozen agent at once, instead of retrying for --slave-wait', async () => {
    const raw = await rawClient(slave.nats.url, 'phoenix', 1000);
    await raw.client.hello(); // only an agent that answered once is waited for
    agent.child.kill('SIGSTOP');
    try {
      const waiting = raw.client.call('fs.getattr', { path: '/' }, { slaveWaitMs: 60_000 });
      await new Promise((r) => setTimeout(r, 300));
      const failed = assert.rejects(waiting, (err: unknown) => err instanceof AgentUnreachableError && err.reason === 'closed');
      const closedAt = Date.now();
      await raw.close();
      await failed;
      assert.ok(Date.now() - closedAt < 3000, `failed after ${Date.now() - closedAt} ms`);
    } catch (err) {
      await raw.close();
      throw err;
    } finally {
      agent.child.kill('SIGCONT');
    }
  });

  it('data the agent had not made durable is written again after it restarts: 10 MiB without fsync, a restart that drops it (fault switch), then fsync', async () => {
    const journal = join(slave.tmp, 'unsynced.journal');
    const faulty = { env: { ...process.env, [FAULT_ENV]: journal } };
    await agent.stop();
    // No background commit: everything written stays unsynced until the fsync.
    agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root, ['--commit-interval', '3600'], faulty);
    const source = join(slave.tmp, 'ten.bin');
    await writeFile(source, randomBytes(10 << 20));
    const writer = spawn('python3', [WRITER, source, join(mnt, 'unsynced.bin')], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    writer.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    writer.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      await waitFor('the data written', () => out.includes('written'), 30_000);
      // All but the mount's last coalesced chunk (sent by the fsync) reaches the slave's page cache.
      await waitFor('the data on the slave', async () => (await stat(join(slave.root, 'unsynced.bin'))).size >= 8 << 20, 30_000);
      agent.child.kill('SIGKILL');
      await once(agent.child, 'exit').catch(() => undefined);
      agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root, ['--commit-interval', '3600'], faulty);
      assert.equal((await stat(join(slave.root, 'unsynced.bin'))).size, 0, 'the fault switch dropped the unsynced data');
      writer.stdin.end('go\n');
      const [code] = (await once(writer, 'exit')) as [number | null];
      assert.equal(code, 0, out);
      assert.match(out, /synced/);
      assert.equal(await sha256(join(slave.root, 'unsynced.bin')), await sha256(source));
    } finally {
      if (writer.exitCode === null) writer.kill('SIGKILL');
      await agent.stop();
      agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root);
    }
  });

  it('files written, closed and given their times just before the agent is killed keep those times after their data is written again', async () => {
    await agent.stop();
    // No background commit: what is written stays unsynced, and is written again after the restart.
    agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root, ['--commit-interval', '3600']);
    const dir = join(mnt, 'timed');
    await mkdir(dir);
    const files = Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, data: randomBytes(1000 + i), sec: 1_000_000_000 + i * 7 }));
    for (const [i, f] of files.entries()) {
      if (i % 2 === 0) {
        await writeFile(join(dir, f.name), f.data);
        await utimes(join(dir, f.name), f.sec, f.sec + 0.5); // as os.utime does after the data
      } else {
        const handle = await open(join(dir, f.name), 'w'); // as tar does: futimens before close
        await handle.write(f.data);
        await handle.utimes(f.sec, f.sec + 0.5);
        await handle.close();
      }
    }
    try {
      agent.child.kill('SIGKILL');
      await once(agent.child, 'exit').catch(() => undefined);
      agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root);
      await readdir(dir); // the mount meets the restarted agent and writes the data again first
      for (const f of files) {
        const st = await stat(join(slave.root, 'timed', f.name));
        assert.deepEqual(await readFile(join(slave.root, 'timed', f.name)), f.data, `${f.name}'s data`);
        assert.equal(st.atimeMs, f.sec * 1000, `${f.name}'s atime is the one it was given`);
        assert.equal(st.mtimeMs, f.sec * 1000 + 500, `${f.name}'s mtime is the one it was given, not the rewrite's`);
      }
      assert.match(mount.log(), /writing again what it had not made durable/);
    } finally {
      await agent.stop();
      agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root);
    }
  });

  it('a file whose creation was lost with its data is made again with the mode, owner and times the program knew', async () => {
    await agent.stop();
    agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root, ['--commit-interval', '3600']);
    const path = join(mnt, 'lost-creation');
    const data = randomBytes(5000);
    await writeFile(path, data, { mode: 0o640 });
    await chown(path, 1234, 2345);
    await utimes(path, 1_100_000_000, 1_100_000_001);
    try {
      agent.child.kill('SIGKILL');
      await once(agent.child, 'exit').catch(() => undefined);
      // As a power cut that took the file's creation with its data.
      await rm(join(slave.root, 'lost-creation'));
      agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root);
      await readdir(mnt);
      const st = await stat(join(slave.root, 'lost-creation'));
      assert.deepEqual(await readFile(join(slave.root, 'lost-creation')), data);
      assert.equal(st.mode & 0o7777, 0o640);
      assert.deepEqual([st.uid, st.gid], [1234, 2345]);
      assert.deepEqual([st.atimeMs, st.mtimeMs], [1_100_000_000_000, 1_100_000_001_000]);
    } finally {
      await agent.stop();
      agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root);
    }
  });

  it('an open device is opened again when it is there on the restarted agent', async () => {
    const devices = join(slave.tmp, 'dev');
    await mkdir(devices);
    const m = await startMountProcess(slave.nats.url, devices, ['--agent', 'phoenix', '--devices', '--slave-wait', '30']);
    try {
      const holder = spawn('python3', [DEVICE_HOLDER, devices], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      holder.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      holder.stderr.on('data', (d: Buffer) => { out += d.toString(); });
      await waitFor('the device to be open', () => out.includes('open') || holder.exitCode !== null, 20_000);
      await crashAgent(500);
      holder.stdin.end('go\n');
      const [code] = (await once(holder, 'exit')) as [number | null];
      assert.equal(code, 0, out);
      assert.match(out, /done/);
    } finally {
      await m.stop();
    }
  });

  it('a remote sleep 30 whose agent is killed ends with 255 and a message', async () => {
    const exec = spawnCollecting(process.execPath, [CLI, 'exec', slave.nats.url, '--agent', 'phoenix', '--', 'sleep', '30']);
    await new Promise((r) => setTimeout(r, 1000));
    const killedAt = Date.now();
    agent.child.kill('SIGKILL');
    await once(agent.child, 'exit').catch(() => undefined);
    const [code] = (await once(exec.child, 'exit')) as [number | null];
    assert.equal(code, 255, exec.stdout() + exec.stderr());
    assert.match(exec.stdout() + exec.stderr(), /splitbrain/);
    assert.ok(Date.now() - killedAt < 20_000);
    agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root);
  });

  it('a bridged sleep 30 whose agent is killed exits 255; the bridge serves the next command once the agent is back', async () => {
    const bridge = await startBridgeProcess(slave.nats.url, 'phoenix', join(slave.tmp, 'bridge.sock'), join(slave.tmp, 'bin'),
      ['--command', 'sleep', '--command', 'echo']);
    try {
      const env = { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: bridge.socket };
      const sleeping = spawnCollecting(join(bridge.shimDir, 'sleep'), ['30'], { env });
      await new Promise((r) => setTimeout(r, 1000));
      agent.child.kill('SIGKILL');
      await once(agent.child, 'exit').catch(() => undefined);
      const [code] = (await once(sleeping.child, 'exit')) as [number | null];
      assert.equal(code, 255, sleeping.stderr());
      assert.match(sleeping.stderr(), /splitbrain/);
      agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root);
      const echoed = await run(join(bridge.shimDir, 'echo'), ['back'], { env });
      assert.equal(echoed.code, 0, echoed.stderr);
      assert.equal(echoed.stdout, 'back\n');
    } finally {
      await bridge.stop();
    }
  });

  it('a bridged command started while NATS is down waits for it within --slave-wait, and exits 255 past it', async () => {
    // --no-link: the bus alone reaches the agent (with a link, the command runs: the next test).
    const bridge = await startBridgeProcess(slave.nats.url, 'phoenix', join(slave.tmp, 'bridge.sock'), join(slave.tmp, 'bin'),
      ['--command', 'echo', '--slave-wait', '4', '--no-link']);
    try {
      const env = { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: bridge.socket };
      assert.equal((await run(join(bridge.shimDir, 'echo'), ['before'], { env })).stdout, 'before\n');
      // Back within the wait: the command runs (it once failed at once, its subscription's check
      // rejected by the lost connection).
      await slave.nats.stop();
      const waiting = run(join(bridge.shimDir, 'echo'), ['during'], { env, timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 1500));
      await slave.nats.restart();
      const during = await waiting;
      assert.equal(during.code, 0, during.stderr);
      assert.equal(during.stdout, 'during\n');
      // Gone for longer than the wait: 255, after it and not only once NATS is back.
      await slave.nats.stop();
      const startedAt = Date.now();
      const past = await run(join(bridge.shimDir, 'echo'), ['past'], { env, timeoutMs: 30_000 });
      assert.equal(past.code, 255, past.stderr);
      assert.ok(Date.now() - startedAt < 15_000, `took ${Date.now() - startedAt} ms`);
      await slave.nats.restart();
      await waitFor('the bridge to serve again', async () =>
        (await run(join(bridge.shimDir, 'echo'), ['after'], { env })).stdout === 'after\n', 20_000, 250);
    } finally {
      await bridge.stop();
    }
  });

  it('with its session link up, a bridged command runs while NATS is down, its output whole', async () => {
    const bridge = await startBridgeProcess(slave.nats.url, 'phoenix', join(slave.tmp, 'bridge-linked.sock'), join(slave.tmp, 'bin-linked'),
      ['--command', 'echo', '--command', 'seq', '--slave-wait', '4']);
    try {
      const env = { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: bridge.socket };
      // The link is made in the background, and taken by the next request once nothing waits on the bus.
      await waitFor('the bridge\'s session link', async () => (await linksOf(bridge.child.pid ?? 0, slave.nats.url)) === 1, 10_000);
      assert.equal((await run(join(bridge.shimDir, 'echo'), ['warm'], { env })).stdout, 'warm\n');
      await slave.nats.stop();
      try {
        const during = await run(join(bridge.shimDir, 'seq'), ['1', '100000'], { env, timeoutMs: 30_000 });
        assert.equal(during.code, 0, during.stderr);
        assert.equal(during.stdout, `${Array.from({ length: 100_000 }, (_, i) => i + 1).join('\n')}\n`);
      } finally {
        await slave.nats.restart();
      }
    } finally {
      await bridge.stop();
    }
  });

  it('a remote process whose agent restarts ends with 255: the restarted slave does not have it', async () => {
    const exec = spawnCollecting(process.execPath, [CLI, 'exec', slave.nats.url, '--agent', 'phoenix', '--', 'sleep', '30']);
    await new Promise((r) => setTimeout(r, 1000));
    await crashAgent(200);
    const [code] = (await once(exec.child, 'exit')) as [number | null];
    assert.equal(code, 255, exec.stdout() + exec.stderr());
    assert.match(exec.stdout() + exec.stderr(), /restarted|no longer knows/);
  });
});
