/**
 * Session links (transport/session-link.ts): a file mount's requests and their replies go on a
 * direct TLS connection to the agent, not through the NATS server; `-o link=off` keeps them on
 * the bus; a link cut in the middle of a write, or gone silent, leaves the mount working over the
 * bus with every byte in place, in order.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../helpers/ports.js';
import { run, waitFor } from '../helpers/processes.js';
import { startBareAgent, startMountProcess, type BareAgent, type MountProcess } from '../helpers/slave.js';
import { connectionsTo, linkPort, natsMessages } from '../helpers/links.js';

describe('session links', () => {
  let monitorPort: number;
  let slave: BareAgent;
  let linked: MountProcess;
  let bused: MountProcess;
  let linkedDir: string;
  let busedDir: string;

  before(async () => {
    monitorPort = await freePort();
    slave = await startBareAgent({ id: 'session', natsArgs: ['-m', String(monitorPort)] });
    linkedDir = join(slave.tmp, 'linked');
    busedDir = join(slave.tmp, 'bused');
    await mkdir(linkedDir);
    await mkdir(busedDir);
    linked = await startMountProcess(slave.nats.url, linkedDir, ['--agent', 'session', '--log-level', 'info']);
    bused = await startMountProcess(slave.nats.url, busedDir, ['--agent', 'session', '-o', 'link=off']);
    await waitFor('the session link', async () => (await connectionsTo(linkPort(slave))) === 1, 10_000);
  });
  after(async () => {
    await linked?.stop();
    await bused?.stop();
    await slave?.stop();
  });

  it('carries a mount\'s requests and data past the NATS server; -o link=off keeps them on the bus', async () => {
    const data = randomBytes(8 * 1024 * 1024);
    const counted: number[] = [];
    for (const [dir, onBus] of [[linkedDir, false], [busedDir, true]] as const) {
      const name = onBus ? 'bused.bin' : 'linked.bin';
      const before = await natsMessages(monitorPort);
      const result = await run('dd', [`of=${join(dir, name)}`, 'bs=1M', 'conv=fsync'], { input: data, timeoutMs: 60_000 });
      assert.equal(result.code, 0, result.stderr);
      for (let i = 0; i < 20; i++) await writeFile(join(dir, `small-${i}`), `file ${i}\n`);
      const messages = (await natsMessages(monitorPort)) - before;
      assert.ok((await readFile(join(slave.root, name))).equals(data), `${name}: the slave's copy differs`);
      assert.equal(await readFile(join(slave.root, 'small-7'), 'utf8'), 'file 7\n');
      counted.push(messages);
    }
    // On the bus: at least a write per MiB and a create per small file, and their replies. With
    // the link: only the change feed's events (for the other mount) and its heartbeat.
    const [withLink = 0, withoutLink = 0] = counted;
    assert.ok(withoutLink >= 56, `${withoutLink} bus messages without a link`);
    assert.ok(withLink * 2 < withoutLink, `${withLink} bus messages with a link, ${withoutLink} without`);
    // Read back through the mount, over the link.
    assert.ok((await readFile(join(linkedDir, 'bused.bin'))).equals(await readFile(join(slave.root, 'bused.bin'))));
  });

  it('a link cut in the middle of a write: the mount goes on over the bus, every byte in place, and links again', async () => {
    const port = linkPort(slave);
    const data = randomBytes(64 * 1024 * 1024);
    const file = join(linkedDir, 'cut.bin');
    // dd writes 64 MiB while the kernel ends the link at both ends (ss -K: SOCK_DESTROY), as a
    // network that dropped it would, a moment after dd started.
    const writing = run('dd', [`of=${file}`, 'bs=1M', 'conv=fsync'], { input: data, timeoutMs: 120_000 });
    await new Promise((resolve) => setTimeout(resolve, 150));
    const cut = await run('ss', ['-K', '-t', `sport = :${port}`]);
    assert.equal(cut.code, 0, cut.stderr);
    const result = await writing;
    assert.equal(result.code, 0, result.stderr);
    assert.ok((await readFile(join(slave.root, 'cut.bin'))).equals(data), 'the slave\'s copy differs after the cut');
    assert.match(linked.log(), /session link lost/, 'the link was not cut while in use');
    // It asks for a new link after a pause, and uses it.
    await waitFor('a new session link', async () => (await connectionsTo(port)) === 1, 15_000);
    await writeFile(join(linkedDir, 'after-cut'), 'again\n');
    assert.equal(await readFile(join(slave.root, 'after-cut'), 'utf8'), 'again\n');
  });

  it('a link that goes silent (its packets dropped, no reset): the mount goes on over the bus within seconds', async () => {
    const port = linkPort(slave);
    await waitFor('a session link', async () => (await connectionsTo(port)) === 1, 15_000);
    const rules = [['-p', 'tcp', '-i', 'lo', '--dport', String(port), '-j', 'DROP'], ['-p', 'tcp', '-i', 'lo', '--sport', String(port), '-j', 'DROP']];
    const added: string[][] = [];
    try {
      for (const rule of rules) {
        const result = await run('iptables', ['-I', 'INPUT', ...rule]);
        assert.equal(result.code, 0, result.stderr);
        added.push(rule);
      }
      const started = Date.now();
      const data = randomBytes(3 * 1024 * 1024 + 17);
      // Bounded by run's timeout: a mount stuck on the dead link fails the test instead of hanging it.
      const result = await run('dd', [`of=${join(linkedDir, 'silent.bin')}`, 'bs=1M', 'conv=fsync'], { input: data, timeoutMs: 60_000 });
      assert.equal(result.code, 0, result.stderr);
      assert.ok((await readFile(join(slave.root, 'silent.bin'))).equals(data), 'the slave\'s copy differs after the link went silent');
      assert.ok(Date.now() - started < 20_000, `the write took ${Date.now() - started} ms`);
      // Seen by the probe that asks the agent, over the bus, what it has in hand (well before
      // the request's own 30 s deadline).
      assert.match(linked.log(), /the session link is given up/, 'the mount did not give the silent link up');
    } finally {
      for (const rule of added) await run('iptables', ['-D', 'INPUT', ...rule]);
    }
  });
});
