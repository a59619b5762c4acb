/**
 * The spawn bridge and the static exec shim: unmodified programs on the master run the slave's
 * processes through a directory of command links first on their PATH.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBridgeProcess, type BridgeProcess } from '../helpers/bridge.js';
import { isAlive, run, sh, spawnCollecting, stopProcess, waitFor } from '../helpers/processes.js';
import { assertSigtermReachesRemote } from '../helpers/remote-signals.js';
import { startBareAgent, type BareAgent } from '../helpers/slave.js';

const BRIDGED = ['uname', 'cat', 'head', 'env', 'sleep', 'true', 'false'];

describe('spawn bridge and exec shim', () => {
  let slave: BareAgent;
  let bridge: BridgeProcess;
  let bin: string;
  /** Where the test pretends to see the slave's root (the sidecar's slave mount). */
  let slaveView: string;
  let env: NodeJS.ProcessEnv;
  const shim = () => join(bin, 'splitbrain-exec');

  before(async () => {
    slave = await startBareAgent({ id: 'bridge-slave' });
    bin = join(slave.tmp, 'bin');
    slaveView = join(slave.tmp, 'slave-view');
    await mkdir(join(slaveView, 'sub'), { recursive: true });
    await mkdir(join(slave.root, 'sub'));
    bridge = await startBridgeProcess(slave.nats.url, slave.agent.id, join(slave.tmp, 'bridge.sock'), bin, [
      ...BRIDGED.flatMap((c) => ['--command', c]), '--slave-mount', slaveView, '--env-prefix', 'TEST_',
    ]);
    env = { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: bridge.socket, PATH: `${bin}:${process.env.PATH ?? ''}` };
  });
  after(async () => {
    await bridge?.stop();
    await slave?.stop();
  });

  it('fills the shim directory: the static shim and one link per bridged command', async () => {
    const names = (await readdir(bin)).sort();
    assert.deepEqual(names, [...BRIDGED, 'splitbrain-exec'].sort());
    for (const command of BRIDGED) assert.equal(await readlink(join(bin, command)), 'splitbrain-exec');
    const ldd = await run('ldd', [shim()]);
    assert.match(ldd.stdout + ldd.stderr, /not a dynamic executable|statically linked/);
  });

  it('exits as the remote command did: 0, 1, 7, 127 with the slave\'s message, 128+N after a signal', async () => {
    assert.equal((await run('true', [], { env })).code, 0);
    assert.equal((await run('false', [], { env })).code, 1);
    assert.equal((await run(shim(), ['sh', '-c', 'exit 7'], { env })).code, 7);
    const missing = await run(shim(), ['no-such-command-here'], { env });
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /no-such-command-here: command not found/);
    assert.equal((await run(shim(), ['sh', '-c', 'kill -KILL $$'], { env })).code, 137);
  });

  it('runs the slave\'s command through PATH, with the slave\'s PATH and only the allowed environment', async () => {
    const script = 'import subprocess; r = subprocess.run(["env"], capture_output=True, text=True); print(r.returncode); print(r.stdout)';
    const result = await run('python3', ['-c', script], {
      env: { ...env, TEST_GIVEN: 'yes', SECRET_OF_MASTER: 'no', LANG: 'C.UTF-8' },
    });
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.split('\n');
    assert.equal(lines[0], '0');
    assert.ok(lines.includes('TEST_GIVEN=yes'), result.stdout);
    assert.ok(lines.includes('LANG=C.UTF-8'), result.stdout);
    assert.ok(!lines.some((l) => l.startsWith('SECRET_OF_MASTER=')), result.stdout);
    const path = lines.find((l) => l.startsWith('PATH=')) ?? '';
    assert.ok(path.length > 5 && !path.includes(bin), `the master's PATH crossed: ${path}`);
  });

  it('translates a cwd inside the slave mount, and runs anywhere else in the default directory', async () => {
    assert.equal(await sh(`cd '${slaveView}/sub' && '${shim()}' sh -c pwd`, { env }), `${join(slave.root, 'sub')}\n`);
    assert.equal(await sh(`cd / && '${shim()}' sh -c pwd`, { env }), `${slave.root}\n`);
  });

  it('keeps stdout and stderr apart', async () => {
    const result = await run(shim(), ['sh', '-c', 'echo out1; echo err1 >&2; echo out2; echo err2 >&2'], { env });
    assert.equal(result.stdout, 'out1\nout2\n');
    assert.equal(result.stderr, 'err1\nerr2\n');
  });

  it('moves 256 MiB through stdin and back through stdout unchanged', async () => {
    const input = join(slave.tmp, 'big.bin');
    const data = randomBytes(256 * 1024 * 1024);
    await writeFile(input, data);
    const want = createHash('sha256').update(data).digest('hex');
    const got = await sh(`cat < '${input}' | sha256sum`, { env, timeoutMs: 180_000 });
    assert.equal(got.split(' ')[0], want);
  });

  it('hands a slow reader every byte of interleaved stdout and stderr, in order (issue 22: output gathered in reused buffers, credit in batches)', async () => {
    // The slave writes 24 MiB to stdout with a line on stderr every MiB; the master reads
    // stdout slower than it comes, so the agent fills its window, pauses, and takes its buffers
    // back only as credit returns.
    const source = join(slave.root, 'slow-reader.bin');
    await writeFile(source, randomBytes(24 * 1024 * 1024));
    const script = `for i in $(seq 0 23); do dd if=slow-reader.bin bs=1M skip=$i count=1 status=none; echo "mark $i" >&2; done`;
    const reader = 'import sys, time, hashlib\nh = hashlib.sha256()\nwhile True:\n  b = sys.stdin.buffer.read(262144)\n  if not b: break\n  h.update(b)\n  time.sleep(0.005)\nprint(h.hexdigest())';
    const out = await sh(`cd / && { '${shim()}' sh -c '${script}' 2>'${join(slave.tmp, 'slow-reader.err')}'; } | python3 -c '${reader}'`, { env, timeoutMs: 120_000 });
    assert.equal(out.trim(), createHash('sha256').update(await readFile(source)).digest('hex'));
    assert.equal(await readFile(join(slave.tmp, 'slow-reader.err'), 'utf8'), Array.from({ length: 24 }, (_, i) => `mark ${i}\n`).join(''));
  });

  it('ends like a local writer when its reader leaves: 141, and the remote writer is gone', async () => {
    // The remote shell writes its pid on the slave itself: sent as output, on stderr, it could
    // arrive after the stdout that ends the shim (two pipes, read in whichever order).
    const pidFile = join(slave.tmp, 'shim-yes.pid');
    const result = await run('bash', ['-c',
      `'${shim()}' sh -c 'echo $$ > ${pidFile}; exec yes' | head -n 2; echo "status \${PIPESTATUS[0]}"`], { env, timeoutMs: 60_000 });
    assert.equal(result.stdout, 'y\ny\nstatus 141\n', result.stderr);
    const remotePid = Number((await readFile(pidFile, 'utf8')).trim());
    assert.ok(remotePid > 0, 'the remote shell wrote its pid');
    await waitFor('the remote writer to end', () => !isAlive(remotePid), 10_000, 50).catch((err: unknown) => {
      // What the agent and the bridge said of the hang-up (or the lease) tells why it outlived them.
      throw new Error(`${(err as Error).message}\nagent log: ${slave.agent.log().slice(-3000)}\nbridge log: ${bridge.log().slice(-3000)}`);
    });
  });

  it('mixes local and remote commands in one pipeline', async () => {
    assert.equal(await sh(`printf 'b\\na\\nc\\n' | cat | sort | head -n 1`, { env }), 'a\n');
  });

  it('forwards SIGTERM sent to the shim to the remote process', async () => {
    await assertSigtermReachesRemote(shim(), [], join(slave.root, 'trapped'), { env });
  });

  it('gives a terminal of the right size when the shim runs on one', async () => {
    // script(1) gets a stdin that stays open: at end of input it would type ^D into the terminal.
    const child = spawn('script', ['-qec', `stty rows 33 cols 91; '${shim()}' sh -c 'tty; stty size'`, '/dev/null'],
      { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0, out);
      assert.match(out, /\/dev\/pts\/\d+/);
      assert.match(out, /33 91/);
    } finally {
      child.stdin.end();
      await stopProcess(child, 'SIGKILL');
    }
  });

  it('runs 50 commands at once', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) =>
      run(shim(), ['sh', '-c', 'echo "$1"; exit "$1"', 'x', String(i)], { env, timeoutMs: 60_000 })));
    results.forEach((r, i) => {
      assert.equal(r.code, i, r.stderr);
      assert.equal(r.stdout, `${i}\n`);
    });
  });

  it('says so and exits 127 when the bridge cannot be reached', async () => {
    const result = await run(shim(), ['true'], { env: { ...env, SPLITBRAIN_BRIDGE_SOCKET: join(slave.tmp, 'nowhere.sock') } });
    assert.equal(result.code, 127);
    assert.match(result.stderr, /cannot reach the bridge at .*nowhere\.sock/);
  });

  it('with --bridge-all, bridges the slave\'s commands but keeps shells and interpreters local', async () => {
    const allBin = join(slave.tmp, 'all-bin');
    const all = await startBridgeProcess(slave.nats.url, slave.agent.id, join(slave.tmp, 'all.sock'), allBin,
      ['--bridge-all', '--keep', 'uname']);
    try {
      const names = new Set(await readdir(allBin));
      for (const bridged of ['cat', 'ls', 'mount']) assert.ok(names.has(bridged), `${bridged} is not bridged`);
      for (const local of ['sh', 'bash', 'python3', 'env', 'uname']) assert.ok(!names.has(local), `${local} is bridged`);
    } finally {
      await all.stop();
    }
  });

  // Last: it kills the bridge.
  it('when the bridge dies mid-command, the shim exits non-zero with a message and the remote process ends', async () => {
    const proc = spawnCollecting(shim(), ['sh', '-c', 'echo $$; exec sleep 300'], { env });
    try {
      await waitFor('the remote pid', () => /^\d+\n/.test(proc.stdout()), 15_000);
      const remotePid = Number(proc.stdout().trim());
      assert.ok(isAlive(remotePid));
      // 'close', not 'exit': the process may exit before its stderr is all read (the test saw '' under load).
      const exited = once(proc.child, 'close');
      await bridge.stop('SIGKILL');
      const [code] = (await exited) as [number | null];
      assert.notEqual(code, 0);
      assert.match(proc.stderr(), /bridge closed the connection/);
      await waitFor('the remote process to end', () => !isAlive(remotePid), 20_000, 200);
    } finally {
      await stopProcess(proc.child, 'SIGKILL');
    }
  });
});
