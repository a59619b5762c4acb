/**
 * `splitbrain shell` (issue 25): a command run on this machine in a private mount namespace where
 * the slave's directories, files and devices are at their real paths, with the slave's commands
 * bridged, as the caller, and nothing left afterwards. The slave is this machine: an agent in a
 * UTS namespace named `sb-shell-slave`, whose PATH has a command of its own, and a board behind
 * a pseudo-terminal among its devices.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { access, chmod, chown, constants, lstat, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, run, waitFor, type RunResult } from '../helpers/processes.js';
import { startBareAgent, type BareAgent } from '../helpers/slave.js';

const BOARD = new URL('../../../test/fixtures/board.py', import.meta.url).pathname;
const SLAVE_NAME = 'sb-shell-slave';
const NOBODY = 65534;

/** What must be the same before and after a shell: our mounts, shells' temp dirs, their processes. */
async function traces(): Promise<{ mounts: string; dirs: string[]; processes: string[] }> {
  const processes: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(`${CLI}\0shell`) || cmdline.includes('splitbrain-shell-')) processes.push(`${pid} ${cmdline.replaceAll('\0', ' ')}`);
  }
  return {
    // The mounts a shell could leave (others, of other tests or programs, may come and go).
    mounts: (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map((line) => line.split(' ')[4] ?? '')
      .filter((at) => /splitbrain-(shell|test-absent)-|^\/slave|^\/dev\/tty|^\/etc\/board/.test(at)).sort().join('\n'),
    dirs: (await readdir(tmpdir())).filter((name) => name.startsWith('splitbrain-shell-')),
    processes,
  };
}

describe('splitbrain shell', () => {
  let slave: BareAgent;
  let board: ChildProcess;
  let devRoot: string;
  let masterBoard: string;
  let before0: Awaited<ReturnType<typeof traces>>;

  const shell = (args: string[], command: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> =>
    run(process.execPath, [CLI, 'shell', slave.nats.url, '--agent', slave.agent.id, '--slave-wait', '5', ...args, '--', ...command], {
      env: { ...process.env, ...env }, timeoutMs: 60_000, cwd: tmpdir(),
    });

  before(async () => {
    devRoot = await mkdtemp(join(tmpdir(), 'splitbrain-shell-test-dev-'));
    await mkdir(join(devRoot, 'pts'));
    await run('mount', ['--bind', '/dev/pts', join(devRoot, 'pts')]);
    board = spawn('python3', [BOARD, join(devRoot, 'ttyBOARD')], { stdio: ['pipe', 'pipe', 'inherit'] });
    let device = '';
    board.stdout?.on('data', (d: Buffer) => { device += d.toString(); });
    await waitFor('the board', () => device.includes('\n') || board.exitCode !== null);
    slave = await startBareAgent({
      id: 'shell-slave',
      agentArgs: ['--dev-root', devRoot, '--dev-allow', 'ttyBOARD', '--dev-allow', 'pts/*'],
      // The slave has a hostname of its own, as a real slave has (its processes see it too).
      agentWrapper: ['unshare', '--uts', 'sh', '-c', `hostname ${SLAVE_NAME} && exec "$0" "$@"`],
      prepare: async (root) => {
        await mkdir(join(root, 'dev')); // the devices are seen at the slave's /dev
        await mkdir(join(root, 'etc', 'board'), { recursive: true });
        await writeFile(join(root, 'etc', 'board', 'id'), 'board-42 of the slave\n');
        // For the caller without root (nobody): a directory of its own, and a file only root may read.
        await mkdir(join(root, 'nobody-home'));
        await chown(join(root, 'nobody-home'), NOBODY, NOBODY);
        await writeFile(join(root, 'root-only'), 'secret\n', { mode: 0o600 });
        await mkdir(join(root, 'slavebin'));
        await writeFile(join(root, 'slavebin', 'slave-only-tool'), '#!/bin/sh\necho "slave tool on $(uname -n)"\n', { mode: 0o755 });
      },
      agentEnv: (root) => ({ ...process.env, PATH: `${root}/slavebin:${process.env.PATH ?? '/usr/bin:/bin'}` }),
    });
    // A directory the master has, with other content: the slave's hides it in the shell only.
    masterBoard = await mkdtemp(join(tmpdir(), 'splitbrain-shell-test-board-'));
    await chmod(masterBoard, 0o755);
    await writeFile(join(masterBoard, 'id'), 'the master\'s own\n');
    before0 = await traces();
  });
  after(async () => {
    await slave?.stop();
    board?.stdin?.end();
    if (board && board.exitCode === null) await once(board, 'exit');
    if (devRoot) {
      await run('umount', ['-l', join(devRoot, 'pts')]);
      await rm(devRoot, { recursive: true, force: true });
    }
    if (masterBoard) await rm(masterBoard, { recursive: true, force: true });
  });

  it('shows the slave\'s directory at its real path, over the master\'s, and leaves nothing behind', async () => {
    // And at a path the master lacks, in the directory that holds the shell's own.
    const absent = join(tmpdir(), `splitbrain-test-absent-${process.pid}`, 'board');
    const result = await shell(['--map', `/etc/board:${masterBoard}`, '--map', `/etc/board:${absent}`],
      ['sh', '-c', `cat ${masterBoard}/id; ls ${masterBoard}; cat /slave/etc/board/id; cat ${absent}/id`]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'board-42 of the slave\nid\nboard-42 of the slave\nboard-42 of the slave\n');
    assert.equal(await readFile(join(masterBoard, 'id'), 'utf8'), 'the master\'s own\n');
    await assert.rejects(lstat(join(absent, '..')), 'nothing was made in the master\'s temp dir');
    assert.deepEqual(await traces(), before0);
  });

  it('talks to the slave\'s serial device at a path the master lacks (pyserial)', async () => {
    await assert.rejects(lstat('/dev/ttyBOARD'), 'this test needs a master without /dev/ttyBOARD');
    const script = [
      'import serial, termios',
      "s = serial.Serial('/dev/ttyBOARD', 115200, timeout=10)",
      "s.write(b'ping\\n')",
      "print(s.read_until(b'pong\\n').decode().strip())",
      "print(termios.tcgetattr(s.fd)[4] == termios.B115200)",
    ].join('\n');
    const result = await shell(['--map', '/dev/ttyBOARD'], ['/usr/bin/python3', '-c', script]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'pong\nTrue\n');
    await assert.rejects(lstat('/dev/ttyBOARD'), 'nothing was made in the master\'s /dev');
    assert.deepEqual(await traces(), before0);
  });

  it('runs bridged commands on the slave, under the slave\'s hostname', async () => {
    const named = await shell(['--command', 'uname'], ['uname', '-n']);
    assert.equal(named.code, 0, named.stderr);
    assert.equal(named.stdout, `${SLAVE_NAME}\n`);
    const local = await shell([], ['python3', '-c', 'import socket; print(socket.gethostname())']);
    assert.equal(local.stdout, `${SLAVE_NAME}\n`, local.stderr);
    const missing = await shell(['--bridge-missing'], ['slave-only-tool']);
    assert.equal(missing.code, 0, missing.stderr);
    assert.equal(missing.stdout, `slave tool on ${SLAVE_NAME}\n`);
  });

  it('is a Python interpreter for a debugger: pdb steps through a test reading a slave file', async () => {
    // What an IDE's run/debug configuration points at: a wrapper that execs splitbrain shell.
    const work = await mkdtemp(join(tmpdir(), 'splitbrain-shell-test-ide-'));
    try {
      const wrapper = join(work, 'python-on-slave');
      await writeFile(wrapper, `#!/bin/sh\nexec '${process.execPath}' '${CLI}' shell '${slave.nats.url}' --agent ${slave.agent.id} `
        + `--map /etc/board:${masterBoard} -- python3 "$@"\n`, { mode: 0o755 });
      await writeFile(join(work, 'test_board.py'), [
        'def test_board_id():',
        `    data = open('${masterBoard}/id').read()`,
        "    assert data.startswith('board-42')",
        '    return data',
        'print(test_board_id().strip())',
      ].join('\n') + '\n');
      const debug = await run(wrapper, ['-m', 'pdb', 'test_board.py'], {
        cwd: work, timeoutMs: 60_000, input: ['b 3', 'c', 'p data', 'n', 'c', 'q', ''].join('\n'),
      });
      assert.equal(debug.code, 0, debug.stderr);
      assert.match(debug.stdout, /Breakpoint 1 at .*test_board\.py:3/);
      assert.match(debug.stdout, /\(Pdb\) 'board-42 of the slave\\n'/, debug.stdout);
      assert.match(debug.stdout, /-> return data/);
      assert.match(debug.stdout, /\(Pdb\) board-42 of the slave\nThe program finished/);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it('returns the command\'s status, 127 for a command that does not exist, and runs as the sudo caller', async () => {
    assert.equal((await shell([], ['sh', '-c', 'exit 7'])).code, 7);
    const absent = await shell([], ['no-such-command-anywhere']);
    assert.equal(absent.code, 127);
    assert.match(absent.stderr, /no-such-command-anywhere/);
    const ids = await shell([], ['sh', '-c', 'id -u; id -g; pwd'], { SUDO_UID: String(NOBODY), SUDO_GID: String(NOBODY), SUDO_USER: 'nobody' });
    assert.equal(ids.code, 0, ids.stderr);
    assert.equal(ids.stdout, `${NOBODY}\n${NOBODY}\n${tmpdir()}\n`);
    assert.deepEqual(await traces(), before0);
  });

  for (const [how, toGroup] of [['Ctrl-C interrupts the command (its whole process group)', true], ['SIGINT is sent to splitbrain shell alone', false]] as const) {
    it(`ends with 130 when ${how}, and stops everything`, async () => {
      // A process group of its own, as a terminal's foreground job: the terminal's Ctrl-C goes to all of it.
      const child = spawn(process.execPath, [CLI, 'shell', slave.nats.url, '--agent', slave.agent.id, '--', 'sh', '-c', 'echo started; exec sleep 60'], {
        detached: true, stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
      const exited = once(child, 'exit');
      await waitFor('the command to start', () => out.includes('started') || child.exitCode !== null, 30_000);
      assert.ok(child.pid !== undefined);
      process.kill(toGroup ? -child.pid : child.pid, 'SIGINT');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 130);
      await waitFor('everything of the shell gone', async () => JSON.stringify(await traces()) === JSON.stringify(before0), 15_000);
    });
  }

  it('refuses bad input clearly and leaves nothing behind', async () => {
    const unmapped = await shell(['--map', '/no/such/path'], ['true']);
    assert.equal(unmapped.code, 125);
    assert.match(unmapped.stderr, /--map \/no\/such\/path: no such file, directory or device on the slave/);
    const unreachable = await run(process.execPath, [CLI, 'shell', 'nats://127.0.0.1:9', '--', 'true'], { timeoutMs: 60_000 });
    assert.equal(unreachable.code, 125);
    assert.match(unreachable.stderr, /cannot connect to nats:\/\/127\.0\.0\.1:9/);
    const usage = await run(process.execPath, [CLI, 'shell', slave.nats.url, '--map', 'relative', '--', 'true']);
    assert.equal(usage.code, 2);
    // Root without CAP_SYS_ADMIN, as in an unprivileged container.
    const capless = await run('setpriv', ['--bounding-set=-sys_admin', process.execPath, CLI, 'shell', slave.nats.url, '--', 'true'], { timeoutMs: 60_000 });
    assert.equal(capless.code, 1, capless.stderr);
    assert.match(capless.stderr, /cannot make a mount namespace .*needs CAP_SYS_ADMIN/);
    assert.deepEqual(await traces(), before0);
  });

  it('without root: runs in a user namespace, or says what it needs', async () => {
    const asNobody = ['setpriv', '--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups'];
    const command = [process.execPath, CLI, 'shell', slave.nats.url, '--agent', slave.agent.id, '--', 'sh', '-c',
      'id -u; cat /slave/etc/board/id; cat /slave/root-only; touch /slave/nobody-home/made && stat -c %u /slave/nobody-home/made'];
    await access(CLI, constants.R_OK);
    if ((await run(asNobody[0] ?? '', [...asNobody.slice(1), 'test', '-w', '/dev/fuse'])).code !== 0) {
      // This machine's /dev/fuse is root's alone (mode 0600, as here): the message says so.
      const refused = await run(asNobody[0] ?? '', [...asNobody.slice(1), ...command], { timeoutMs: 60_000, cwd: tmpdir() });
      assert.equal(refused.code, 1, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /without root, FUSE needs \/dev\/fuse readable and writable by you/);
    }
    // Where /dev/fuse is open to all (most distributions): here in a mount namespace of the
    // test's, with a node of the same device, mode 0666, bound over it.
    const fuseNode = join(devRoot, 'fuse-for-all');
    const script = `mknod ${fuseNode} c 10 229 && chmod 666 ${fuseNode} && mount --bind ${fuseNode} /dev/fuse && exec "$@"`;
    const result = await run('unshare', ['--mount', 'sh', '-c', script, 'sh', ...asNobody, ...command], { timeoutMs: 60_000, cwd: tmpdir() });
    await rm(fuseNode, { force: true });
    assert.equal(result.code, 0, result.stderr);
    // The slave acts as the caller, not as the namespace's root: root's file stays closed, and
    // what the caller makes is the caller's, there and as the command sees it.
    assert.equal(result.stdout, `${NOBODY}\nboard-42 of the slave\n${NOBODY}\n`);
    assert.match(result.stderr, /cat: \/slave\/root-only: Permission denied/);
    assert.equal((await lstat(join(slave.root, 'nobody-home', 'made'))).uid, NOBODY);
    assert.deepEqual(await traces(), before0);
  });
});
