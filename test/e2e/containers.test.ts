/**
 * End to end with a real Docker engine: a slave container (hostname slave-1, its own files, a
 * board console on a pty, NATS and the agent) on an internal network this test creates, and the
 * example test image, which knows nothing of splitbrain, run against it by the master compose
 * file and by `splitbrain run`. Needs the images of scripts/build-images.sh and an engine
 * (scripts/docker-setup.sh); scripts/test.sh runs both first.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, run, waitFor, type RunResult } from '../helpers/processes.js';

const COMPOSE_FILE = new URL('../../../compose/docker-compose.yml', import.meta.url).pathname;
const SHARE_ROOT = '/run/splitbrain';
const TAG = process.env.TAG ?? 'local';

async function docker(...args: string[]): Promise<string> {
  const result = await run('docker', args, { timeoutMs: 120_000 });
  if (result.code !== 0) throw new Error(`docker ${args.join(' ')}: ${result.stderr}`);
  return result.stdout.trim();
}

/** The port the agent offers links on, from its log. */
function linkPort(log: string): number {
  const line = log.split('\n').find((l) => l.includes('links offered'));
  assert.ok(line, 'the slave\'s agent offers no links');
  return (JSON.parse(line) as { port: number }).port;
}

/** Whether /proc/net/tcp{,6} text shows an established connection on local `port`. */
/** Established connections to the local `port` in a /proc/net/tcp table. */
function establishedOn(table: string, port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return table.split('\n').filter((row) => {
    const [, local, , state] = row.trim().split(/\s+/);
    return local?.endsWith(`:${hex}`) === true && state === '01';
  }).length;
}

describe('containers end to end', () => {
  const id = `sbe2e${randomBytes(3).toString('hex')}`;
  const network = `${id}-lab`;
  const slave = `${id}-slave`;
  const projects: string[] = [];
  let volumesBefore = '';

  const splitbrainRun = (args: string[], timeoutMs = 180_000): Promise<RunResult> => run(process.execPath, [
    CLI, 'run', '--slave', 'nats://slave-1:4222', '--network', network, '--command', 'hostname', '--command', 'cat',
    '--sidecar-image', `splitbrain/sidecar:${TAG}`, ...args,
  ], { timeoutMs });

  /** What `splitbrain run` must never leave: containers, volumes, mounts, directories. */
  async function assertNothingLeft(): Promise<void> {
    assert.equal(await docker('ps', '-a', '-q', '--filter', 'label=io.splitbrain.run'), '', 'a container is left');
    assert.equal(await docker('volume', 'ls', '-q'), volumesBefore, 'a volume is left');
    const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')
      .map((line) => line.split(' ')[4] ?? '').filter((p) => p.startsWith(`${SHARE_ROOT}/splitbrain-run-`));
    assert.deepEqual(mounts, [], 'a mount is left');
    assert.deepEqual((await readdir(SHARE_ROOT)).filter((n) => n.startsWith('splitbrain-run-')), [], 'a directory is left');
  }

  async function composeUp(project: string, env: Record<string, string> = {}): Promise<RunResult> {
    projects.push(project);
    const dir = join(SHARE_ROOT, project);
    await mkdir(join(dir, 'slave'), { recursive: true });
    return run('docker-compose', ['-p', project, '-f', COMPOSE_FILE, 'up', '--exit-code-from', 'test'], {
      timeoutMs: 240_000,
      env: {
        ...process.env, SLAVE: 'nats://slave-1:4222', TEST_IMAGE: `splitbrain/example-tests:${TAG}`,
        SPLITBRAIN_IMAGE: `splitbrain/sidecar:${TAG}`, NETWORK_MODE: network, SPLITBRAIN_DIR: dir,
        SLAVE_HOSTNAME: 'slave-1', BRIDGE_COMMANDS: 'hostname cat', ...env,
      },
    });
  }

  before(async () => {
    volumesBefore = await docker('volume', 'ls', '-q');
    // Internal: nothing in it reaches beyond it, and nothing is published on the host.
    await docker('network', 'create', '--internal', network);
    await docker('run', '-d', '--init', '--name', slave, '--hostname', 'slave-1', '--network', network,
      '--network-alias', 'slave-1', `splitbrain/example-slave:${TAG}`);
    await waitFor('the slave\'s agent', async () => (await run('docker', ['logs', slave])).stderr.includes('agent serving')
      || (await run('docker', ['logs', slave])).stdout.includes('agent serving'), 60_000, 250);
  });

  after(async () => {
    for (const project of projects) {
      await run('docker-compose', ['-p', project, '-f', COMPOSE_FILE, 'down', '-v'], {
        env: { ...process.env, SLAVE: 'x', TEST_IMAGE: 'x' }, timeoutMs: 120_000,
      });
      await run('rm', ['-r', '--one-file-system', join(SHARE_ROOT, project)]);
    }
    await run('docker', ['rm', '-f', '-v', slave]);
    await run('docker', ['network', 'rm', network]);
  });

  it('keeps the lab inside its internal network: nothing published', async () => {
    assert.equal(await docker('network', 'inspect', '-f', '{{.Internal}}', network), 'true');
    assert.equal(await docker('inspect', '-f', '{{json .NetworkSettings.Ports}}', slave), '{}');
  });

  it('compose: the example tests pass against the slave, and what they wrote is on the slave', async () => {
    const result = await composeUp(`${id}-pass`);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /6 passed, 1 skipped/);
    assert.equal(await docker('exec', slave, 'cat', '/tmp/written-by-test.txt'), 'hello from the master');
  });

  it('compose: --exit-code-from test returns the test\'s failure', async () => {
    await docker('exec', slave, 'touch', '/etc/example-fail');
    try {
      const result = await composeUp(`${id}-fail`);
      assert.equal(result.code, 1, result.stdout + result.stderr);
      assert.match(result.stdout, /1 failed, 6 passed/);
    } finally {
      await docker('exec', slave, 'rm', '-f', '/etc/example-fail');
    }
  });

  it('splitbrain run: the tests pass, with the slave\'s hostname from its hello, and nothing is left', async () => {
    await docker('exec', slave, 'rm', '-f', '/tmp/written-by-test.txt');
    const result = await splitbrainRun([`splitbrain/example-tests:${TAG}`]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /test_own_hostname_is_the_slaves PASSED/);
    assert.match(result.stdout, /6 passed, 1 skipped/);
    assert.equal(await docker('exec', slave, 'cat', '/tmp/written-by-test.txt'), 'hello from the master');
    await assertNothingLeft();
  });

  it('splitbrain run: --map shows a slave directory at the test\'s own path, and exit statuses pass through', async () => {
    const result = await splitbrainRun(['--map', '/var/log/board:/var/log/app', `splitbrain/example-tests:${TAG}`,
      'sh', '-c', 'head -n 5 /var/log/app/console.log; ls /slave/dev/ttyBOARD; exit 7']); // cat would run on the slave
    assert.equal(result.code, 7, result.stderr);
    assert.equal(result.stdout, 'boot ok\nsensor 21.5C\n/slave/dev/ttyBOARD\n');
    await assertNothingLeft();
  });

  it('splitbrain run: absolute links show under /slave both ways, and leave the test container\'s own files alone', async () => {
    await docker('exec', slave, 'sh', '-c',
      'mkdir -p /opt/fw/v2 && echo slave-2.0 > /opt/fw/v2/version && ln -sfn /opt/fw/v2 /opt/fw/current && rm -f /opt/fw/made');
    // The test container has its own /opt/fw/v2/version (the sentinel): no slave link reaches it.
    const script = 'mkdir -p /opt/fw/v2 && echo test-image > /opt/fw/v2/version; readlink /slave/opt/fw/current; '
      + 'head -n 1 /slave/opt/fw/current/version; ln -s /slave/opt/fw/v2 /slave/opt/fw/made && readlink /slave/opt/fw/made; '
      + 'python3 -c "import os; print(os.path.realpath(\'/slave/opt/fw/made/version\'))"; '
      + 'echo written > /slave/opt/fw/current/written; head -n 1 /opt/fw/v2/version; ls /opt/fw/v2; readlink /slave/dev/ttyBOARD';
    const result = await splitbrainRun([`splitbrain/example-tests:${TAG}`, 'sh', '-c', script]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.deepEqual(lines.slice(0, 6), [
      '/slave/opt/fw/v2', 'slave-2.0', '/slave/opt/fw/v2', '/slave/opt/fw/v2/version', 'test-image', 'version',
    ], result.stdout);
    // The board console is a relayed terminal: a pseudo-terminal of the sidecar's, which the test sees.
    assert.match(lines[6] ?? '', /^\/splitbrain\/pts\/\d+$/, result.stdout);
    assert.equal(await docker('exec', slave, 'readlink', '/opt/fw/made'), '/opt/fw/v2');
    assert.equal(await docker('exec', slave, 'cat', '/opt/fw/v2/written'), 'written');
    await assertNothingLeft();
  });

  it('splitbrain run: --map /dev/ttyBOARD gives the test the slave\'s console as a real terminal; pyserial drives it', async () => {
    const script = [
      'import select, subprocess, serial, time',
      's = serial.Serial("/dev/ttyBOARD", 115200, bytesize=8, parity="N", stopbits=1, timeout=5)',
      's.write(b"ping\\n"); print(s.read_until(b"\\n").decode().strip())',
      'time.sleep(3)  # the terminal held open while the test looks for its device link on the slave',
      'r, _, _ = select.select([s.fd], [], [], 0.3); print("quiet" if not r else "readable")',
      's.baudrate = 57600; s.send_break(0.05)',
      's.write(b"version\\n"); print(s.read_until(b"\\n").decode().strip())',
      'print(subprocess.run(["stty", "-F", "/dev/ttyBOARD"], capture_output=True, text=True).stdout.split(";")[0])',
      's.close()',
    ].join('\n');
    const running = splitbrainRun(['--map', '/dev/ttyBOARD', `splitbrain/example-tests:${TAG}`, 'python3', '-c', script]);
    // The sidecar reaches the slave's agent directly: the slave runs its own NATS server, which
    // its agent reaches over loopback, so links are offered on loopback and the sidecar connects to
    // slave-1, where it reached NATS (docs/architecture.md, "Device links"). Its file mount's
    // session link is one connection; the terminal's device link is a second.
    let done = false;
    void running.finally(() => { done = true; });
    const logs = await run('docker', ['logs', slave]);
    const port = linkPort(`${logs.stdout}\n${logs.stderr}`);
    let linked = false;
    const deadline = Date.now() + 60_000;
    while (!linked && !done && Date.now() < deadline) {
      const tcp = await run('docker', ['exec', slave, 'cat', '/proc/net/tcp', '/proc/net/tcp6']);
      linked = establishedOn(tcp.stdout, port) >= 2;
      if (!linked) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const result = await running;
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(result.stdout, 'pong\nquiet\nboard-fw 1.4.2\nspeed 57600 baud\n');
    assert.ok(linked, `no session and device link to the slave agent's link port ${port} while the terminal was open`);
    // What the test set is the slave's device's.
    assert.match(await docker('exec', slave, 'stty', '-F', '/dev/ttyBOARD'), /^speed 57600 baud/);
    await assertNothingLeft();
  });

  /**
   * What a test sees of the slave as its user: a file it reads (with head: cat is bridged), one it
   * writes (whose owner on the slave the caller checks), one it may not create, and the uid the
   * slave's `id` reports.
   */
  const asUserScript = 'head -n 1 /slave/etc/hostname; echo hi > /slave/tmp/by-$(/usr/bin/id -u) && echo wrote; '
    + 'touch /slave/etc/by-test 2>&1; echo "bridged uid $(id -u)"; echo "local uid $(/usr/bin/id -u)"';

  it('splitbrain run: a test image running as uid 1000 uses the slave with uid 1000\'s rights; a root image stays root', async () => {
    await docker('exec', slave, 'rm', '-f', '/tmp/by-1000', '/tmp/by-0');
    const user = await splitbrainRun(['--command', 'id', `splitbrain/example-tests-user:${TAG}`, 'sh', '-c', asUserScript]);
    assert.equal(user.code, 0, user.stdout + user.stderr);
    assert.match(user.stdout, /^slave-1\nwrote\n/);
    assert.match(user.stdout, /touch: cannot touch '\/slave\/etc\/by-test': Permission denied\n/);
    assert.match(user.stdout, /bridged uid 1000\nlocal uid 1000\n/);
    assert.equal(await docker('exec', slave, 'stat', '-c', '%u:%g', '/tmp/by-1000'), '1000:1000');

    const root = await splitbrainRun(['--command', 'id', `splitbrain/example-tests:${TAG}`, 'sh', '-c', asUserScript]);
    assert.equal(root.code, 0, root.stdout + root.stderr);
    assert.match(root.stdout, /bridged uid 0\nlocal uid 0\n/);
    assert.equal(await docker('exec', slave, 'stat', '-c', '%u:%g', '/tmp/by-0'), '0:0');
    assert.equal((await run('docker', ['exec', slave, 'test', '-e', '/etc/by-test'])).code, 0, 'root may create in /etc');
    await docker('exec', slave, 'rm', '-f', '/etc/by-test', '/tmp/by-1000', '/tmp/by-0');
    await assertNothingLeft();
  });

  it('compose: the test image running as uid 1000 gets uid 1000\'s rights on the slave', async () => {
    await docker('exec', slave, 'rm', '-f', '/tmp/by-1000');
    const result = await composeUp(`${id}-user`, {
      TEST_IMAGE: `splitbrain/example-tests-user:${TAG}`, BRIDGE_COMMANDS: 'hostname cat id',
      // Compose substitutes its variables in the file once: the value's own $ reach the shell.
      TEST_COMMAND: `sh -c '${asUserScript}'`,
    });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /\|\S*\s*slave-1\s*$/m);
    assert.match(result.stdout, /\|\S*\s*wrote\s*$/m);
    assert.match(result.stdout, /Permission denied/);
    assert.match(result.stdout, /bridged uid 1000/);
    assert.equal(await docker('exec', slave, 'stat', '-c', '%u:%g', '/tmp/by-1000'), '1000:1000');
    await docker('exec', slave, 'rm', '-f', '/tmp/by-1000');
  });

  it('splitbrain run: the slave container restarted between tests; the tests after it pass, and what was written before is intact', async () => {
    const run1 = spawn(process.execPath, [CLI, 'run', '--slave', 'nats://slave-1:4222', '--network', network,
      '--command', 'hostname', '--command', 'cat', '--sidecar-image', `splitbrain/sidecar:${TAG}`, `splitbrain/example-tests:${TAG}`,
      'sh', '-c', 'python3 -m pytest -q -p no:cacheprovider /tests -k written && echo "phase 1 done" && sleep 12 '
        + '&& head -n 1 /slave/tmp/written-by-test.txt && python3 -m pytest -q -p no:cacheprovider /tests'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    run1.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    run1.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const exited = once(run1, 'exit');
    try {
      await waitFor('the first tests', () => out.includes('phase 1 done'), 120_000, 100);
      await docker('restart', '-t', '1', slave);
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, out);
      assert.match(out, /hello from the master\n/);
      assert.match(out, /6 passed, 1 skipped/);
    } finally {
      if (run1.exitCode === null && run1.signalCode === null) run1.kill('SIGKILL');
    }
    await assertNothingLeft();
  });

  it('splitbrain run: --bridge-missing and --python-fallback bring what the image lacks from the slave; its own tools stay local', async () => {
    const script = 'command -v ls; command -v python3; command -v labctl; labctl; '
      + 'python3 -c "import json, labtools; print(labtools.GREETING); print(labtools.__file__); print(json.__file__)"';
    const result = await run(process.execPath, [
      CLI, 'run', '--slave', 'nats://slave-1:4222', '--network', network, '--sidecar-image', `splitbrain/sidecar:${TAG}`,
      '--bridge-missing', '--python-fallback', `splitbrain/example-tests:${TAG}`, 'sh', '-c', script,
    ], { timeoutMs: 180_000 });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const lines = result.stdout.trim().split('\n');
    // The image's ls and python3, the slave's labctl (only the slave has it), run on the slave.
    assert.deepEqual(lines.slice(0, 4), ['/usr/bin/ls', '/usr/bin/python3', '/splitbrain/fallback/labctl', 'labctl on slave-1']);
    assert.equal(lines[4], 'labtools from the slave');
    assert.match(lines[5] ?? '', /^\/slave\/usr\/.*\/labtools\.py$/);
    assert.match(lines[6] ?? '', /^\/usr\/lib\/python3[^/]*\/json\/__init__\.py$/);
    await assertNothingLeft();
  });

  it('splitbrain run: returns the test\'s failure, and nothing is left', async () => {
    const result = await splitbrainRun(['-e', 'EXAMPLE_FAIL=1', `splitbrain/example-tests:${TAG}`,
      'python3', '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '/tests']);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, /1 failed, 6 passed/);
    await assertNothingLeft();
  });

  it('splitbrain run: SIGINT stops the test, returns 130, and nothing is left', async () => {
    const child = spawn(process.execPath, [CLI, 'run', '--slave', 'nats://slave-1:4222', '--network', network,
      '--sidecar-image', `splitbrain/sidecar:${TAG}`, `splitbrain/example-tests:${TAG}`, 'sleep', '600'], { stdio: 'ignore' });
    const exited = once(child, 'exit');
    try {
      await waitFor('the test container to run', async () =>
        (await docker('ps', '-q', '--filter', 'label=io.splitbrain.run', '--filter', 'name=-test')) !== '', 120_000, 250);
      child.kill('SIGINT');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 130);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await assertNothingLeft();
  });

  it('splitbrain shell: the same tests pass run on this machine, no container on the master, and nothing is left', async () => {
    // The master reaches the slave container on the network this test made, as a lab reaches a slave.
    const address = await docker('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', slave);
    const tests = new URL('../../../compose/example/tests', import.meta.url).pathname;
    await docker('exec', slave, 'rm', '-f', '/tmp/written-by-test.txt');
    const mountsBefore = await readFile('/proc/self/mountinfo', 'utf8');
    const result = await run(process.execPath, [CLI, 'shell', `nats://${address}:4222`, '--command', 'hostname', '--command', 'cat',
      '--', '/usr/bin/python3', '-m', 'pytest', '-v', '-p', 'no:cacheprovider', tests], { timeoutMs: 180_000 });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /test_own_hostname_is_the_slaves PASSED/);
    assert.match(result.stdout, /test_board_console_answers PASSED/);
    assert.match(result.stdout, /6 passed, 1 skipped/);
    assert.equal(await docker('exec', slave, 'cat', '/tmp/written-by-test.txt'), 'hello from the master');
    assert.equal(await readFile('/proc/self/mountinfo', 'utf8'), mountsBefore);
    assert.deepEqual((await readdir(tmpdir())).filter((n) => n.startsWith('splitbrain-shell-')), []);
    // The slave's console at its real path on this machine, a real terminal for pyserial; what
    // the test sets is the slave's device's.
    const console = await run(process.execPath, [CLI, 'shell', `nats://${address}:4222`, '--map', '/dev/ttyBOARD', '--', '/usr/bin/python3', '-c', [
      'import subprocess, serial',
      's = serial.Serial("/dev/ttyBOARD", 115200, timeout=5)',
      's.write(b"version\\n"); print(s.read_until(b"\\n").decode().strip())',
      's.baudrate = 38400; s.send_break(0.05)',
      'print(subprocess.run(["stty", "-F", "/dev/ttyBOARD"], capture_output=True, text=True).stdout.split(";")[0])',
    ].join('\n')], { timeoutMs: 120_000 });
    assert.equal(console.code, 0, console.stdout + console.stderr);
    assert.equal(console.stdout, 'board-fw 1.4.2\nspeed 38400 baud\n');
    assert.match(await docker('exec', slave, 'stty', '-F', '/dev/ttyBOARD'), /^speed 38400 baud/);
  });

  it('splitbrain run: a slave that cannot be reached fails the setup with 125 and a clear message, and nothing is left', async () => {
    const result = await run(process.execPath, [CLI, 'run', '--slave', 'nats://127.0.0.1:1', '--network', 'none',
      '--sidecar-image', `splitbrain/sidecar:${TAG}`, `splitbrain/example-tests:${TAG}`, 'true'], { timeoutMs: 120_000 });
    assert.equal(result.code, 125, result.stderr);
    assert.match(result.stderr, /cannot connect to nats:\/\/127\.0\.0\.1:1/);
    await assertNothingLeft();
  });
});
