/**
 * `splitbrain exec` and the agent's process service: exit statuses, signals both ways, stdio
 * kept apart and intact, a terminal of the right size, and no process left behind when the
 * master side dies.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, isAlive, run, sh, spawnCollecting, stopProcess, waitFor } from '../helpers/processes.js';
import { assertSigtermReachesRemote } from '../helpers/remote-signals.js';
import { decodeEvent, outputSubject, type ProcEvent } from '../../protocol/index.js';
import { rawClient } from '../helpers/raw-client.js';
import { startBareAgent, type BareAgent } from '../helpers/slave.js';

describe('splitbrain exec', () => {
  let slave: BareAgent;
  let exec: string[];
  const execRun = (args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}) =>
    run(process.execPath, [...exec, ...args], { timeoutMs: 60_000, ...options });

  before(async () => {
    slave = await startBareAgent({ id: 'exec-slave' });
    exec = [CLI, 'exec', slave.nats.url, '--agent', slave.agent.id];
  });
  after(async () => { await slave?.stop(); });

  it('exits with the remote exit status, 127 for a missing command, 126 for one it may not run', async () => {
    assert.equal((await execRun(['--', 'true'])).code, 0);
    assert.equal((await execRun(['--', 'false'])).code, 1);
    assert.equal((await execRun(['--', 'sh', '-c', 'exit 7'])).code, 7);
    const missing = await execRun(['--', 'no-such-command-here']);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /no-such-command-here: command not found/);
    await writeFile(join(slave.root, 'not-executable.sh'), '#!/bin/sh\necho hi\n');
    await chmod(join(slave.root, 'not-executable.sh'), 0o644);
    const denied = await execRun(['--', './not-executable.sh']);
    assert.equal(denied.code, 126);
    assert.match(denied.stderr, /Permission denied/);
  });

  it('reports a remote process killed by signal N as 128+N', async () => {
    assert.equal((await execRun(['--', 'sh', '-c', 'kill -KILL $$'])).code, 128 + 9);
    assert.equal((await execRun(['--', 'sh', '-c', 'kill -TERM $$'])).code, 128 + 15);
  });

  it('keeps stdout and stderr apart', async () => {
    const result = await execRun(['--', 'sh', '-c', 'echo out1; echo err1 >&2; echo out2; echo err2 >&2']);
    assert.equal(result.stdout, 'out1\nout2\n');
    assert.equal(result.stderr, 'err1\nerr2\n');
  });

  it('gives the process pipes of the agent\'s own for its output, and leaves no descriptor open after it (issue 22)', async () => {
    const pid = slave.agent.child.pid as number;
    const descriptors = async () => (await readdir(`/proc/${pid}/fd`)).length;
    const result = await execRun(['--', 'sh', '-c', 'readlink /proc/self/fd/1 /proc/self/fd/2']);
    assert.match(result.stdout, /^pipe:\[\d+\]\npipe:\[\d+\]\n$/);
    const before = await descriptors();
    for (let i = 0; i < 10; i++) assert.equal((await execRun(['--', 'sh', '-c', 'echo out; echo err >&2'])).stdout, 'out\n');
    // A few may be in flight elsewhere in the agent (its bus, its watcher): none per command.
    assert.ok(await descriptors() <= before + 2, `agent descriptors: ${before} before, ${await descriptors()} after`);
  });

  it('ends after the output of a background child that keeps stdout open', async () => {
    const result = await execRun(['--', 'sh', '-c', '(sleep 0.3; echo late) & echo early']);
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'early\nlate\n');
  });

  it('passes 64 MiB through stdin and back through stdout unchanged', async () => {
    const input = join(slave.tmp, 'input.bin');
    const data = randomBytes(64 * 1024 * 1024);
    await writeFile(input, data);
    const want = createHash('sha256').update(data).digest('hex');
    const got = await sh(`node ${[...exec].map((a) => `'${a}'`).join(' ')} -- cat < '${input}' | sha256sum`, { timeoutMs: 120_000 });
    assert.equal(got.split(' ')[0], want);
  });

  it('runs in a slave directory with the slave\'s PATH, and only the environment it is given', async () => {
    const result = await execRun(['-C', '/', '-e', 'GIVEN=yes', '--', 'sh', '-c', 'pwd; echo "$GIVEN:${SECRET:-unset}"; echo "$PATH"'], {
      env: { ...process.env, SECRET: 'master-only', PATH: `/master/only:${process.env.PATH ?? ''}` },
    });
    assert.equal(result.code, 0, result.stderr);
    const [pwd, vars, path] = result.stdout.trim().split('\n');
    assert.equal(pwd, slave.root);
    assert.equal(vars, 'yes:unset');
    assert.doesNotMatch(path ?? '', /\/master\/only/);
  });

  it('passes hundreds of variables (a CI job\'s environment): the decoder once refused maps above 64 entries', async () => {
    const given = Array.from({ length: 300 }, (_, i) => ['-e', `CI_VAR_${i}=value-${i}`]).flat();
    const result = await execRun([...given, '--', 'sh', '-c', 'env | grep -c "^CI_VAR_"; echo "$CI_VAR_299"']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '300\nvalue-299\n');
  });

  it('logs one line per request with its op, result and latency at --log-level debug', async () => {
    const result = await execRun(['--log-level', 'debug', '--', 'true']);
    assert.equal(result.code, 0, result.stderr);
    const requests = result.stderr.split('\n').filter((line) => line.includes('"msg":"request"'))
      .map((line) => JSON.parse(line) as { op: string; result: string; micros: number; agentId: string });
    const spawn = requests.find((r) => r.op === 'proc.spawn');
    assert.ok(spawn, result.stderr);
    assert.equal(spawn.result, 'OK');
    assert.equal(spawn.agentId, slave.agent.id);
    assert.ok(spawn.micros > 0);
  });

  it('takes the end of input of a process that closed its stdin as done; data to it is EPIPE', async () => {
    // A capture's command may be done with its stdin (or have exited) before its end of input
    // arrives: that failed the capture with "the process closed its stdin".
    const raw = await rawClient(slave.nats.url, slave.agent.id);
    const subject = outputSubject(slave.agent.id, 'stdin-test');
    const events: ProcEvent[] = [];
    const sub = await raw.bus.subscribe(subject, (data) => events.push(decodeEvent(data)));
    try {
      const { procId } = await raw.client.call('proc.spawn', {
        argv: ['sh', '-c', 'exec 0<&-; echo closed; sleep 5'], env: {}, cwd: '/', pty: null, output: subject, window: 1 << 20,
      });
      await waitFor('its stdin closed', () => events.some((e) => 'data' in e), 10_000, 20);
      let refused: unknown;
      for (let i = 0; i < 50 && refused === undefined; i++) {
        await raw.client.call('proc.stdin', { procId, data: Buffer.from('late\n'), eof: false }).catch((err: unknown) => { refused = err; });
      }
      assert.equal((refused as { errnoName?: string } | undefined)?.errnoName, 'EPIPE');
      await raw.client.call('proc.stdin', { procId, data: new Uint8Array(0), eof: true });
      await raw.client.call('proc.signal', { procId, signal: 'SIGKILL' });
      await waitFor('its exit', () => events.some((e) => 'exit' in e), 10_000, 20);
      const exit = events.find((e) => 'exit' in e);
      await raw.client.call('proc.credit', { procId, bytes: 0, received: (exit?.seq ?? 0) + 1 }).catch(() => undefined);
    } finally {
      sub.stop();
      await raw.close();
    }
  });

  it('runs as another user and group when asked (a root agent)', async () => {
    const result = await execRun(['--uid', '65534', '--gid', '65534', '--', 'sh', '-c', 'id -u; id -g']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '65534\n65534\n');
  });

  it('forwards SIGTERM to the remote process', async () => {
    await assertSigtermReachesRemote(process.execPath, [...exec, '--'], join(slave.root, 'trapped'));
  });

  it('gives a terminal of the caller\'s size with -t', async () => {
    const command = `stty rows 33 cols 91; '${process.execPath}' ${exec.map((a) => `'${a}'`).join(' ')} -t -- sh -c 'tty; stty size'`;
    const result = await run('script', ['-qec', command, '/dev/null'], { timeoutMs: 60_000 });
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.match(result.stdout, /\/dev\/pts\/\d+/);
    assert.match(result.stdout, /33 91/);
  });

  it('follows the terminal\'s size changes with -t', async () => {
    // The remote shell prints its size at start and again after its terminal is resized.
    const remote = 'trap "stty size" WINCH; stty size; echo ready; sleep 3 & wait; sleep 0.3';
    const execLine = `'${process.execPath}' ${exec.map((a) => `'${a}'`).join(' ')} -t -- sh -c '${remote}'`;
    const script = `stty rows 33 cols 91; ${execLine} < /dev/tty & sleep 1.5; stty rows 40 cols 120; kill -WINCH $!; wait`;
    const child = spawn('script', ['-qec', script, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0, out);
      assert.match(out, /33 91[\s\S]*ready[\s\S]*40 120/);
    } finally {
      child.stdin.end();
      await stopProcess(child, 'SIGKILL');
    }
  });

  it('leaves no process behind when the master side dies', async () => {
    const proc = spawnCollecting(process.execPath, [...exec, '--', 'sh', '-c', 'echo $$; exec sleep 300']);
    await waitFor('the remote pid', () => /^\d+\n/.test(proc.stdout()), 15_000);
    const remotePid = Number(proc.stdout().trim());
    assert.ok(isAlive(remotePid));
    await stopProcess(proc.child, 'SIGKILL');
    // The agent's lease (5 s) runs out, then a hang-up ends it.
    await waitFor('the orphan to be ended', () => !isAlive(remotePid), 20_000, 200);
  });

  it('ends like a local writer when its reader leaves: 141, and the remote writer is gone', async () => {
    // The remote shell writes its pid on the slave itself: sent as output, on stderr, it could
    // arrive after the stdout that ends the command (two pipes, read in whichever order).
    const command = `'${process.execPath}' ${exec.map((a) => `'${a}'`).join(' ')} -n -- sh -c 'echo $$ > ${slave.tmp}/yes.pid; exec yes' | head -n 2; echo "status \${PIPESTATUS[0]}"`;
    const result = await run('bash', ['-c', command], { timeoutMs: 60_000 });
    assert.equal(result.stdout, 'y\ny\nstatus 141\n', result.stderr);
    const remotePid = Number((await readFile(join(slave.tmp, 'yes.pid'), 'utf8')).trim());
    assert.ok(remotePid > 0, 'the remote shell wrote its pid');
    await waitFor('the remote writer to end', () => !isAlive(remotePid), 10_000, 50).catch((err: unknown) => {
      // What the agent said of the hang-up (or its lease) tells why the process outlived it.
      throw new Error(`${(err as Error).message}\nagent log: ${slave.agent.log().slice(-3000)}\nexec stderr: ${result.stderr}`);
    });
  });

  it('says so and exits 255 when the agent cannot be reached', async () => {
    const result = await run(process.execPath, [CLI, 'exec', slave.nats.url, '--agent', 'nobody-here', '--', 'true'], { timeoutMs: 60_000 });
    assert.equal(result.code, 255);
    assert.match(result.stderr, /cannot reach the slave's agent nobody-here/);
    assert.ok(!existsSync(join(slave.root, 'nobody-here')));
  });
});
