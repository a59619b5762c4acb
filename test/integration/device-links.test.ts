/**
 * Device links (protocol/link.ts): a relayed terminal's keystrokes and echoes go on a
 * direct TLS connection from the mount to the agent, not through the NATS server; an agent with
 * `--device-link off` keeps them on the bus; a link cut in the middle of a session, or gone
 * silent, leaves the terminal working over the bus with nothing lost or doubled.
 *
 * A board (test/fixtures/board.py) sits behind the slave's /dev/ttyBOARD, in a dev root of the
 * test's own, as in terminals.test.ts. Two agents on one nats-server serve it, one with links
 * and one without, each with a device mount; the tests use them one at a time.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../helpers/ports.js';
import { run, waitFor } from '../helpers/processes.js';
import { startAgentProcess, startBareAgent, startMountProcess, type AgentProcess, type BareAgent, type MountProcess } from '../helpers/slave.js';
import { makeDevRoot, removeDevRoot, startBoard, unplug, type Board } from '../helpers/slave-devices.js';

const PYTHON = '/usr/bin/python3';

/** Python that opens the terminal at argv[1] raw and asks `ping` `n` times, printing each answer. */
function pings(n: number): string {
  return [
    'import os, sys, tty',
    'fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY); tty.setraw(fd)',
    `for i in range(${n}):`,
    '  os.write(fd, b"ping\\n"); got = b""',
    '  while not got.endswith(b"\\n"):',
    '    chunk = os.read(fd, 100)',
    '    if not chunk: sys.exit("hung up")',
    '    got += chunk',
    '  print(got.decode().strip(), flush=True)',
  ].join('\n');
}

/** Messages the NATS server has taken in so far (its /varz). */
async function natsMessages(monitorPort: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${monitorPort}/varz`);
  return ((await response.json()) as { in_msgs: number }).in_msgs;
}

/** The port the agent offers links on, from its log. */
function linkPort(agent: AgentProcess): number {
  const line = agent.log().split('\n').find((l) => l.includes('links offered'));
  assert.ok(line, `the agent offers no device links:\n${agent.log()}`);
  return (JSON.parse(line) as { port: number }).port;
}

describe('device links', () => {
  let monitorPort: number;
  let slave: BareAgent;
  let plain: AgentProcess;
  let devRoot: string;
  let board: Board;
  const mounts: MountProcess[] = [];
  let linked: string;
  let bused: string;

  before(async () => {
    devRoot = await makeDevRoot();
    board = await startBoard(join(devRoot, 'ttyBOARD'));
    monitorPort = await freePort();
    const devArgs = ['--dev-root', devRoot, '--dev-allow', 'ttyBOARD', '--dev-allow', 'pts/*', '--dev-allow', 'fifo'];
    slave = await startBareAgent({ id: 'linked', agentArgs: devArgs, natsArgs: ['-m', String(monitorPort)] });
    plain = await startAgentProcess(slave.nats.url, 'bused', slave.root, [...devArgs, '--device-link', 'off']);
    for (const [agent, dir] of [['linked', 'dev-linked'], ['bused', 'dev-bused']] as const) {
      const path = join(slave.tmp, dir);
      await mkdir(path);
      mounts.push(await startMountProcess(slave.nats.url, path, ['--agent', agent, '--devices', '--log-level', 'info']));
    }
    linked = join(slave.tmp, 'dev-linked', 'ttyBOARD');
    bused = join(slave.tmp, 'dev-bused', 'ttyBOARD');
  });
  after(async () => {
    for (const mount of mounts) await mount.stop();
    await plain?.stop();
    await slave?.stop();
    if (board) await unplug(board);
    await removeDevRoot(devRoot);
  });

  it('carries a terminal\'s keystrokes and echoes past the NATS server; --device-link off keeps them on the bus', async () => {
    for (const [tty, onBus] of [[linked, false], [bused, true]] as const) {
      const before = await natsMessages(monitorPort);
      const result = await run(PYTHON, ['-c', pings(100), tty], { timeoutMs: 60_000 });
      const mount = mounts[onBus ? 1 : 0] as MountProcess;
      assert.equal(result.code, 0, `${tty}: exit ${result.code}, ${result.stdout}${result.stderr}\nthe mount's log:\n${mount.log()}`);
      assert.equal(result.stdout, 'pong\n'.repeat(100));
      const messages = (await natsMessages(monitorPort)) - before;
      // On the bus: a message per keystroke line and one per echo at least. On the link: the
      // open, the close, keepalives and hellos only.
      if (onBus) assert.ok(messages >= 200, `${messages} bus messages for 100 pings without a link`);
      else assert.ok(messages < 60, `${messages} bus messages for 100 pings with a link`);
    }
  });

  it('a link cut in the middle of a session: the terminal goes on over the bus, nothing lost or doubled', async () => {
    const port = linkPort(slave.agent);
    const result = await run(PYTHON, ['-c', [
      pings(5),
      // 500 answers of 1,200 bytes (more than a stream's window) asked at once, and the link cut
      // while they flow: the kernel ends its connection at both ends (ss -K: SOCK_DESTROY), as
      // a network that dropped it would.
      'import subprocess',
      'os.write(fd, b"chatter\\n" * 500)',
      'cut = subprocess.run(["ss", "-K", "-t", "sport = :" + sys.argv[2]], capture_output=True, text=True)',
      'print("cut", (":" + sys.argv[2]) in cut.stdout, flush=True)',
      'got = b""',
      'while len(got) < 500 * 1200:',
      '  chunk = os.read(fd, 65536)',
      '  if not chunk: sys.exit("hung up")',
      '  got += chunk',
      'print(len(got), got == b"noise\\n" * 200 * 500)',
      pings(5).split('\n').slice(2).join('\n'),
    ].join('\n'), linked, String(port)], { timeoutMs: 60_000 });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(result.stdout, `${'pong\n'.repeat(5)}cut True\n600000 True\n${'pong\n'.repeat(5)}`);
    assert.match((mounts[0] as MountProcess).log(), /device link lost/, 'the mount did not see its link go');
  });

  it('a link that goes silent (its packets dropped, no reset): the terminal goes on over the bus within seconds', async () => {
    // A fresh session, so a fresh link; its port is the agent's.
    const port = linkPort(slave.agent);
    const rules = [['-p', 'tcp', '-i', 'lo', '--dport', String(port), '-j', 'DROP'], ['-p', 'tcp', '-i', 'lo', '--sport', String(port), '-j', 'DROP']];
    const session = spawn(PYTHON, ['-c', [
      pings(3),
      'print("drop?", flush=True); sys.stdin.readline()',
      'import time; t = time.monotonic()',
      pings(3).split('\n').slice(2).join('\n'),
      'print("waited", time.monotonic() - t < 20, flush=True)',
    ].join('\n'), linked], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    session.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    session.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const added: string[][] = [];
    try {
      await waitFor('the first pings', () => out.includes('drop?') || session.exitCode !== null, 30_000);
      for (const rule of rules) {
        const result = await run('iptables', ['-I', 'INPUT', ...rule]);
        assert.equal(result.code, 0, result.stderr);
        added.push(rule);
      }
      session.stdin.write('go\n');
      // Bounded: a terminal stuck on the dead link fails the test instead of hanging it.
      const stuck = setTimeout(() => session.kill('SIGKILL'), 30_000);
      const [code] = (await once(session, 'exit')) as [number | null];
      clearTimeout(stuck);
      assert.equal(code, 0, out);
      assert.equal(out, `${'pong\n'.repeat(3)}drop?\n${'pong\n'.repeat(3)}waited True\n`);
      assert.match((mounts[0] as MountProcess).log(), /device link silent/, 'the mount did not give the silent link up');
    } finally {
      for (const rule of added) await run('iptables', ['-D', 'INPUT', ...rule]);
      if (session.exitCode === null) session.kill('SIGKILL');
    }
  });

  it('a device that only talks, over a link gone silent the other way: what it said arrives over the bus within seconds', async () => {
    const port = linkPort(slave.agent);
    // A writer on the slave that holds the FIFO open and writes only when told; a reader through the mount.
    const writer = spawn(PYTHON, ['-c', 'import sys; f = open(sys.argv[1], "wb", 0); sys.stdin.readline(); f.write(b"late\\n"); sys.stdin.readline()',
      join(devRoot, 'fifo')], { stdio: ['pipe', 'ignore', 'inherit'] });
    const reader = spawn(PYTHON, ['-c', [
      'import os, select, sys',
      'fd = os.open(sys.argv[1], os.O_RDONLY); print("open", flush=True)',
      'r, _, _ = select.select([fd], [], [], 30); print("then", r == [fd], os.read(fd, 100) if r else b"", flush=True)',
    ].join('\n'), join(slave.tmp, 'dev-linked', 'fifo')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    reader.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    reader.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    // Only what the agent sends on the link is dropped: the master's side still gets through.
    const rule = ['-p', 'tcp', '-i', 'lo', '--sport', String(port), '-j', 'DROP'];
    let added = false;
    try {
      await waitFor('the reader', () => out.includes('open') || reader.exitCode !== null, 20_000);
      await waitFor('its device link', async () => (await run('ss', ['-Htn', 'state', 'established', `( sport = :${port} )`])).stdout.trim() !== '', 10_000);
      const result = await run('iptables', ['-I', 'INPUT', ...rule]);
      assert.equal(result.code, 0, result.stderr);
      added = true;
      writer.stdin?.write('go\n');
      const [code] = (await once(reader, 'exit')) as [number | null];
      assert.equal(code, 0, out);
      assert.equal(out, 'open\nthen True b\'late\\n\'\n');
      assert.match((mounts[0] as MountProcess).log(), /device link silent with events sent on it/, 'the mount did not give the silent link up');
    } finally {
      if (added) await run('iptables', ['-D', 'INPUT', ...rule]);
      writer.stdin?.end();
      if (reader.exitCode === null) reader.kill('SIGKILL');
      await once(writer, 'exit');
    }
  });
});
