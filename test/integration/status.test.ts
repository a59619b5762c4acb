/**
 * `splitbrain status` lists the agents on a bus with what an operator needs to tell them apart;
 * `splitbrain top` shows what one of them is doing, and the operations it counts are exactly the
 * ones a workload caused.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, run, spawnCollecting, stopProcess, waitFor } from '../helpers/processes.js';
import {
  startAgentProcess, startBareAgent, startMountProcess, type AgentProcess, type BareAgent, type MountProcess,
} from '../helpers/slave.js';

interface StatusEntry { agentId: string; hello?: { hostname: string; bootId: string; version?: string; backend?: string; readOnly: boolean; policy: { exec: unknown }; server?: { name: string; url: string } }; error?: string }
interface Sample { agentId: string; seconds: number; writtenBytesPerSecond: number; ops: { op: string; perSecond: number }[] }

const cli = (args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 30_000 });

describe('status and top', () => {
  let slave: BareAgent;
  let second: AgentProcess;
  let mount: MountProcess;
  let mnt: string;

  before(async () => {
    slave = await startBareAgent({ id: 'board-1' });
    const otherRoot = join(slave.tmp, 'other');
    await mkdir(otherRoot);
    second = await startAgentProcess(slave.nats.url, 'board-2', otherRoot, ['--read-only', '--no-exec']);
    mnt = join(slave.tmp, 'mnt');
    await mkdir(mnt);
    mount = await startMountProcess(slave.nats.url, mnt, ['--agent', 'board-1']);
  });
  after(async () => {
    await mount?.stop();
    await second?.stop();
    await slave?.stop();
  });

  it('lists every agent on the bus with its id, hostname, boot id, uptime, version, backend, server and policy', async () => {
    const listed = await cli(['status', slave.nats.url]);
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^AGENT\s+HOSTNAME\s+BOOT ID\s+UPTIME\s+VERSION\s+BACKEND\s+PID\s+SERVER\s+ROOT\s+POLICY$/);
    assert.equal(lines.length, 3);
    assert.match(lines[1] ?? '', /^board-1\s+\S+\s+[0-9a-f]{8}\s+\d+s\s+0\.1\.0\/p2\s+linux\s+\d+\s+\S+\s+\S+\s+rw as=caller exec=all dev=tty\*/);
    assert.match(lines[2] ?? '', /^board-2\s.*\sro as=caller exec=none dev=/);

    const json = await cli(['status', slave.nats.url, '--json']);
    const entries = JSON.parse(json.stdout) as StatusEntry[];
    assert.deepEqual(entries.map((e) => e.agentId), ['board-1', 'board-2']);
    assert.equal(entries[1]?.hello?.readOnly, true);
    assert.equal(entries[1]?.hello?.policy.exec, 'none');
    assert.equal(entries[0]?.hello?.backend, 'linux');
    assert.match(entries[0]?.hello?.bootId ?? '', /^[0-9a-f-]{36}$/);
    // The server each agent is connected to: one server here, so the same for both.
    assert.equal(entries[0]?.hello?.server?.url, `127.0.0.1:${slave.nats.port}`);
    assert.ok((entries[0]?.hello?.server?.name ?? '') !== '', 'the server has a name');
  });

  it('asks only the agents named, and fails naming the ones that do not answer', async () => {
    const named = await cli(['status', slave.nats.url, '--agent', 'board-2', '--agent', 'board-9', '--wait', '0.5']);
    assert.equal(named.code, 1);
    assert.match(named.stdout, /^board-2\s/m);
    assert.match(named.stdout, /^board-9\s.*no answer: no agent is listening on splitbrain\.board-9\.agent\.hello/m);
    assert.match(named.stderr, /no answer from board-9/);
  });

  it('shows the operations a workload causes, counted exactly', async () => {
    const top = spawnCollecting(process.execPath, [CLI, 'top', slave.nats.url, '--agent', 'board-1', '--interval', '1', '--count', '3', '--json']);
    try {
      // Once the first sample is out, the baseline is taken: all of this lands in later samples.
      await waitFor('the first sample', () => top.stdout().includes('\n'), 15_000);
      for (let i = 0; i < 20; i++) await writeFile(join(mnt, `file-${i}`), Buffer.alloc(64 * 1024, i));
      await waitFor('top to end', () => top.child.exitCode !== null, 15_000);
      assert.equal(top.child.exitCode, 0, top.stderr());
    } finally {
      await stopProcess(top.child);
    }
    const samples = top.stdout().trimEnd().split('\n').map((line) => JSON.parse(line) as Sample);
    assert.equal(samples.length, 3);
    const counted = (op: string) => samples.slice(1).reduce((sum, s) =>
      sum + Math.round((s.ops.find((o) => o.op === op)?.perSecond ?? 0) * s.seconds), 0);
    assert.equal(counted('fs.create'), 20);
    assert.ok(counted('fs.write') >= 20, `fs.write: ${counted('fs.write')}`);
    const written = samples.slice(1).reduce((sum, s) => sum + s.writtenBytesPerSecond * s.seconds, 0);
    assert.ok(Math.abs(written - 20 * 64 * 1024) < 1, `written: ${written}`);
  });

  it('prints a readable table per sample, and says when the agent does not answer', async () => {
    const shown = await cli(['top', slave.nats.url, '--agent', 'board-1', '--interval', '0.2', '--count', '1']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^\d\d:\d\d:\d\d {2}board-1 {2}[\d.]+ ops\/s {2}[\d.]+ err\/s {2}read .* written .* in flight \d+ {2}open: \d+ files/);
    assert.match(shown.stdout, /^OP\s+OPS\/S\s+ERR\/S\s+MEAN MS$/m);
    const missing = await cli(['top', slave.nats.url, '--agent', 'board-9', '--interval', '0.2', '--count', '1']);
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /board-9 {2}no answer: no agent is listening/);
    assert.match(missing.stderr, /no answer from board-9/);
  });
});
