/**
 * A bridged command's output down the bridge's session link (agent/links.ts, `proc.spawn`'s
 * `linkOutput`): it passes the NATS server by, arrives whole and in order, and a link cut in the
 * middle of a command's output, or gone silent, leaves the rest on the bus with nothing lost or
 * repeated.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBridgeProcess, type BridgeProcess } from '../helpers/bridge.js';
import { freePort } from '../helpers/ports.js';
import { run, waitFor } from '../helpers/processes.js';
import { startBareAgent, type BareAgent } from '../helpers/slave.js';
import { connectionsTo, linkPort, natsMessages } from '../helpers/links.js';

/** What `seq 1 count` prints, and its sha256, computed here. */
function seqDigest(count: number): { bytes: number; sha256: string } {
  const hash = createHash('sha256');
  let bytes = 0;
  const lines: string[] = [];
  for (let i = 1; i <= count; i++) {
    lines.push(`${i}\n`);
    if (lines.length === 10_000 || i === count) {
      const chunk = lines.join('');
      hash.update(chunk);
      bytes += chunk.length;
      lines.length = 0;
    }
  }
  return { bytes, sha256: hash.digest('hex') };
}

describe('process output on session links', () => {
  let monitorPort: number;
  let slave: BareAgent;
  let bridge: BridgeProcess;
  let env: NodeJS.ProcessEnv;
  /** iptables rules a test added and has not removed yet: removed in after() if it never got to. */
  const added: string[][] = [];

  before(async () => {
    monitorPort = await freePort();
    slave = await startBareAgent({ id: 'output-links', natsArgs: ['-m', String(monitorPort)] });
    const bin = join(slave.tmp, 'bin');
    bridge = await startBridgeProcess(slave.nats.url, slave.agent.id, join(slave.tmp, 'bridge.sock'), bin, ['--command', 'seq', '--command', 'true']);
    env = { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: bridge.socket, PATH: `${bin}:${process.env.PATH ?? ''}` };
    await waitFor('the bridge\'s session link', async () => (await connectionsTo(linkPort(slave))) === 1, 15_000);
  });
  after(async () => {
    for (const rule of added.splice(0)) await run('iptables', ['-D', 'INPUT', ...rule]);
    await bridge?.stop();
    await slave?.stop();
  });

  it('a command\'s output comes down the link, past the NATS server, whole and in order', async () => {
    // A first command: the bridge takes the link over once the bus is quiet (session-link.ts).
    assert.equal((await run('true', [], { env })).code, 0);
    const count = 2_000_000; // 14.9 MB: 1 MiB events would be ~15 messages each way on the bus, and credits
    const expected = seqDigest(count);
    const before = await natsMessages(monitorPort);
    const result = await run('sh', ['-c', `seq 1 ${count} | sha256sum`], { env, timeoutMs: 60_000 });
    const messages = (await natsMessages(monitorPort)) - before;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.split(/\s/)[0], expected.sha256, 'the output differs from seq\'s');
    // On the bus there would be one event per chunk of output (at most 1 MiB: 15 or more) and the
    // requests that return credit; down the link, only the keepalives and the change feed remain.
    assert.ok(messages < 10, `${messages} messages through the NATS server for ${expected.bytes} bytes of output`);
    assert.doesNotMatch(bridge.log(), /process output missed/, 'output events were lost with the link up');
  });

  it('a link cut in the middle of a command\'s output: the rest comes on the bus, nothing lost or repeated', async () => {
    const port = linkPort(slave);
    await waitFor('a session link', async () => (await connectionsTo(port)) === 1, 15_000);
    assert.equal((await run('true', [], { env })).code, 0);
    const count = 12_000_000; // 98 MB: long enough to be cut in the middle
    const expected = seqDigest(count);
    const reading = run('sh', ['-c', `seq 1 ${count} | sha256sum`], { env, timeoutMs: 120_000 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The kernel ends the link at both ends (ss -K: SOCK_DESTROY), as a network that dropped it would.
    const cut = await run('ss', ['-K', '-t', `sport = :${port}`]);
    assert.equal(cut.code, 0, cut.stderr);
    const result = await reading;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.split(/\s/)[0], expected.sha256, 'the output differs from seq\'s after the cut');
    assert.match(bridge.log(), /session link lost/, 'the link was not cut while in use');
    // It links again, and the next command's output takes it.
    await waitFor('a new session link', async () => (await connectionsTo(port)) === 1, 15_000);
    assert.equal((await run('true', [], { env })).code, 0);
    const again = await run('sh', ['-c', 'seq 1 1000 | sha256sum'], { env, timeoutMs: 30_000 });
    assert.equal(again.stdout.split(/\s/)[0], seqDigest(1000).sha256);
  });

  it('a link that goes silent in the middle of a command\'s output (its packets dropped): the rest comes on the bus within seconds', { timeout: 120_000 }, async () => {
    const port = linkPort(slave);
    await waitFor('a session link', async () => (await connectionsTo(port)) === 1, 20_000);
    assert.equal((await run('true', [], { env })).code, 0);
    const count = 12_000_000;
    const expected = seqDigest(count);
    const rules = [['-p', 'tcp', '-i', 'lo', '--dport', String(port), '-j', 'DROP'], ['-p', 'tcp', '-i', 'lo', '--sport', String(port), '-j', 'DROP']];
    try {
      const started = Date.now();
      const reading = run('sh', ['-c', `seq 1 ${count} | sha256sum`], { env, timeoutMs: 90_000 });
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (const rule of rules) {
        const result = await run('iptables', ['-I', 'INPUT', ...rule]);
        assert.equal(result.code, 0, result.stderr);
        added.push(rule);
      }
      const result = await reading;
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.split(/\s/)[0], expected.sha256, 'the output differs from seq\'s after the link went silent');
      // The agent still thinks the link is up (no reset came): the bridge told it to use the bus.
      assert.ok(Date.now() - started < 45_000, `the command took ${Date.now() - started} ms`);
      assert.match(bridge.log(), /session link.*is given up|is given up.*session link/, 'the bridge did not give the silent link up');
    } finally {
      for (const rule of added.splice(0)) await run('iptables', ['-D', 'INPUT', ...rule]);
    }
  });
});
