/**
 * Changes the mount answers before the slave made them (mount/unrefused-changes.ts): what a
 * program is told is what the slave ends with, stat never shows a guess, a reused name is
 * ordered after its removal, a refusal the mount did not foresee reaches close or fsync and the
 * log, and an agent killed with many changes on their way gets each of them once, in order.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { lstat, mkdir, readFile, readdir, readlink, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run, spawnCollecting, waitFor } from '../helpers/processes.js';
import {
  startAgentProcess, startBareAgent, startMountProcess, startSlave, type AgentProcess, type BareAgent, type MountProcess, type Slave,
} from '../helpers/slave.js';

const OPS = new URL('../../../test/fixtures/unanswered-ops.py', import.meta.url).pathname;

/** Per path: inode, mode, uid, gid, size, mtime in nanoseconds (a string: past what a double holds). */
type Seen = Record<string, [number, number, number, number, number, string]>;

/** What the program was told of each path against the slave's tree: the same inode, mode, owner, size and mtime. */
async function assertSlaveHas(root: string, seen: Seen): Promise<void> {
  for (const [path, [ino, mode, uid, gid, size, mtimeNs]] of Object.entries(seen)) {
    const st = await lstat(join(root, path), { bigint: true });
    const what = `${path} on the slave`;
    assert.deepEqual([Number(st.ino), Number(st.mode), Number(st.uid), Number(st.gid)], [ino, mode, uid, gid], what);
    assert.deepEqual([Number(st.size), st.mtimeNs], [size, BigInt(mtimeNs)], what);
  }
}

async function assertRounds(root: string, base: string, rounds: number): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    const dir = join(root, base, `d${r}`);
    assert.deepEqual((await readdir(dir)).sort(), ['again', 'f0', 'f1', 'f2', 'f3', 'link', 'new', 'w'], `d${r}`);
    assert.equal(await readFile(join(dir, 'f0'), 'utf8'), `renamed ${r}/0\n`);
    assert.equal(await readFile(join(dir, 'new'), 'utf8'), `renamed ${r}/1\n`);
    assert.equal(await readFile(join(dir, 'again'), 'utf8'), 'last\n');
    assert.equal(await readFile(join(dir, 'f3'), 'utf8'), `${r}/3\n`.repeat(4).slice(0, 3));
    assert.equal(await readlink(join(dir, 'link')), `f0-target-${r}`);
  }
  const log = await readFile(join(root, base, 'log'), 'utf8');
  assert.equal(log, Array.from({ length: rounds }, (_, r) => `round ${r}\n`).join(''), 'each append once, in order');
}

describe('changes answered before the slave made them', () => {
  let slave: BareAgent;
  let agent: AgentProcess;
  let mount: MountProcess;
  let mnt: string;

  before(async () => {
    slave = await startBareAgent({ id: 'unanswered' });
    agent = slave.agent;
    mnt = join(slave.tmp, 'mnt');
    await mkdir(mnt);
    mount = await startMountProcess(slave.nats.url, mnt, ['--agent', 'unanswered', '--slave-wait', '30']);
  });
  after(async () => {
    await mount?.stop();
    await agent?.stop();
    await slave?.stop();
  });

  it('leaves the slave as the program saw it, stat showing the slave\'s own inode numbers, reused names in order', async () => {
    await mkdir(join(mnt, 'plain'));
    const result = await run('python3', [OPS, join(mnt, 'plain'), '20']);
    assert.equal(result.code, 0, result.stderr);
    await assertSlaveHas(join(slave.root, 'plain'), JSON.parse(result.stdout) as Seen);
    await assertRounds(slave.root, 'plain', 20);
    // And the mount, asked afresh, says the same as the slave.
    const listed = await run('find', [join(mnt, 'plain'), '-printf', '%P %y %m %U %G %s %T@ %i\n']);
    const there = await run('find', [join(slave.root, 'plain'), '-printf', '%P %y %m %U %G %s %T@ %i\n']);
    assert.equal(listed.stdout.split('\n').sort().join('\n'), there.stdout.split('\n').sort().join('\n'));
  });

  it('an agent killed with a thousand changes on their way gets each once, in order, and nothing the program was told is lost', async () => {
    await mkdir(join(mnt, 'killed'));
    const rounds = 60; // about 1,900 changes
    const program = spawnCollecting('python3', [OPS, join(mnt, 'killed'), String(rounds)]);
    await waitFor('the program to be under way', async () => (await readdir(join(slave.root, 'killed')).catch(() => [])).length >= 3, 20_000, 5);
    agent.child.kill('SIGKILL');
    await once(agent.child, 'exit').catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root);
    const [code] = (await once(program.child, 'exit')) as [number | null];
    assert.equal(code, 0, program.stderr());
    await assertSlaveHas(join(slave.root, 'killed'), JSON.parse(program.stdout()) as Seen);
    await assertRounds(slave.root, 'killed', rounds);
  });
});

/** Python lines that fsync the directory `dir` under `base` and print "fsync ok" or "fsync" and the errno. */
function fsyncDir(dir: string): string[] {
  return [
    `d = os.open(base + '/${dir}', os.O_RDONLY)`,
    'try:',
    '    os.fsync(d)',
    "    print('fsync ok')",
    'except OSError as e:',
    "    print('fsync', errno.errorcode[e.errno])",
  ];
}

/**
 * A refusal the mount could not foresee: the slave's filesystem has no inode left. The mount's
 * listings say the names are free; the agent says ENOSPC after the program was answered.
 */
describe('a change refused after it was answered', () => {
  let slave: BareAgent;
  let mount: MountProcess;
  let mnt: string;
  let small: string;

  before(async () => {
    slave = await startBareAgent({
      id: 'refusing',
      prepare: async (root) => {
        small = join(root, 'small');
        await mkdir(small);
        await run('mount', ['-t', 'tmpfs', '-o', 'size=4m,nr_inodes=64', 'splitbrain-test', small]);
        await mkdir(join(small, 'a'));
        await mkdir(join(small, 'b'));
        // A file no rename may move, not even root's (tmpfs keeps the immutable flag since Linux 6.0).
        await mkdir(join(small, 'c'));
        await writeFile(join(small, 'c', 'locked'), 'stays\n');
        await run('chattr', ['+i', join(small, 'c', 'locked')]);
      },
    });
    mnt = join(slave.tmp, 'mnt');
    await mkdir(mnt);
    mount = await startMountProcess(slave.nats.url, mnt, ['--agent', 'refusing', '--log-level', 'info']);
  });
  after(async () => {
    await mount?.stop();
    if (small) await run('chattr', ['-i', join(small, 'c', 'locked')]);
    if (small) await run('umount', ['-l', small]);
    await slave?.stop();
  });

  it('reaches the file\'s close and its directory\'s fsync, and the log; the names are not there', async () => {
    // The mount lists both directories: it then knows every name in them.
    await readdir(join(mnt, 'small', 'a'));
    await readdir(join(mnt, 'small', 'b'));
    // Every inode taken on the slave's side, beside those directories.
    for (let i = 0; ; i++) {
      try {
        await writeFile(join(small, `fill-${i}`), '');
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
        break;
      }
      assert.ok(i < 1000, 'the tmpfs should run out of inodes');
    }
    const result = await run('python3', ['-c', [
      'import errno, os, sys',
      'base = sys.argv[1]',
      "fd = os.open(base + '/a/f', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)",
      "os.write(fd, b'lost')",
      'try:',
      '    os.close(fd)',
      "    print('close ok')",
      'except OSError as e:',
      "    print('close', errno.errorcode[e.errno])",
      "os.mkdir(base + '/b/sub')",
      "print('mkdir ok')",
      ...fsyncDir('b'),
      "print(os.path.exists(base + '/a/f'), os.path.exists(base + '/b/sub'))",
    ].join('\n'), join(mnt, 'small')]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'close ENOSPC\nmkdir ok\nfsync ENOSPC\nFalse False\n');
    assert.deepEqual((await readdir(join(small, 'a'))), []);
    assert.deepEqual((await readdir(join(small, 'b'))), []);
    assert.match(mount.log(), /"op":"fs.create","path":"\/small\/a\/f","errno":"ENOSPC".*refused by the slave/);
    assert.match(mount.log(), /"op":"fs.mkdir","path":"\/small\/b\/sub","errno":"ENOSPC".*refused by the slave/);
  });

  it('a rename refused after it was answered reaches the directory\'s fsync and the log; the file keeps its name', async () => {
    await readdir(join(mnt, 'small', 'c')); // the mount knows the file and that the new name is free
    const result = await run('python3', ['-c', [
      'import errno, os, sys',
      'base = sys.argv[1]',
      "os.rename(base + '/c/locked', base + '/c/moved')",
      "print('rename ok')",
      ...fsyncDir('c'),
      "print(os.path.exists(base + '/c/locked'), os.path.exists(base + '/c/moved'), open(base + '/c/locked').read(), end='')",
    ].join('\n'), join(mnt, 'small')]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'rename ok\nfsync EPERM\nTrue False stays\n');
    assert.deepEqual(await readdir(join(small, 'c')), ['locked']);
    assert.match(mount.log(), /"op":"fs.rename","path":"\/small\/c\/moved","errno":"EPERM".*refused by the slave/);
  });
});

/**
 * Changes of paths whose host form, export root in front, passes PATH_MAX: the agent names them
 * through directories' descriptors (docs/architecture.md, "Long paths"), so the mount may answer
 * them at once as any other, and the slave makes them. (Before, the agent's answer was
 * ENAMETOOLONG, and pjdfstest's `*\/03.t` found mkdir and symlink returning 0 for them.)
 */
describe('a change of a path past PATH_MAX on the slave', () => {
  let slave: Slave;

  before(async () => {
    slave = await startSlave({ mountArgs: ['--log-level', 'info'] });
  });
  after(async () => {
    await slave?.stop();
  });

  it('is made as asked, nothing refused later, on both sides of the 4,095 bytes', async () => {
    const root = await realpath(slave.root);
    // Directories of 200-byte names until the host path is some 60 bytes short of PATH_MAX.
    const names: string[] = [];
    while (Buffer.byteLength(root) + 201 * (names.length + 1) < 4095 - 60) names.push(`${'d'.repeat(199)}${names.length % 10}`);
    const parent = names.join('/');
    await mkdir(join(root, parent), { recursive: true });
    const left = 4095 - Buffer.byteLength(join(root, parent)) - 1; // the bytes a name may add, its slash aside
    const fits = 'f'.repeat(left);
    const over = 'o'.repeat(left + 1);
    const result = await run('python3', ['-c', [
      'import errno, os, sys',
      'os.chdir(sys.argv[1]); os.chdir(sys.argv[2])', // the master's own PATH_MAX bounds each call's path
      'over, fits = sys.argv[3], sys.argv[4]',
      'os.listdir(".")', // the mount now knows every name here: changes in it may be answered at once
      'def attempt(what, call):',
      '    try:',
      '        call()',
      "        print(what, 'ok')",
      '    except OSError as e:',
      '        print(what, errno.errorcode[e.errno])',
      "attempt('create', lambda: os.close(os.open(over + '1', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)))",
      "attempt('mkdir', lambda: os.mkdir(over + '2'))",
      "attempt('symlink', lambda: os.symlink('t', over + '3'))",
      "open('f', 'w').close()",
      "attempt('rename', lambda: os.rename('f', over + '4'))",
      "attempt('fits', lambda: os.close(os.open(fits, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)))",
      "d = os.open('.', os.O_RDONLY)",
      "attempt('fsync', lambda: os.fsync(d))",
    ].join('\n'), slave.mnt, parent, over, fits]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, ['create ok', 'mkdir ok', 'symlink ok', 'rename ok', 'fits ok', 'fsync ok', ''].join('\n'));
    // Listed on the slave through a descriptor of the directory: its path is too long to name.
    const there = await run('python3', ['-c', 'import os, sys; os.chdir(sys.argv[1]); print(sorted(os.listdir(sys.argv[2])))', root, parent]);
    assert.equal(there.stdout, `${JSON.stringify([fits, `${over}1`, `${over}2`, `${over}3`, `${over}4`].sort()).replaceAll('"', "'").replaceAll(',', ', ')}\n`);
    assert.doesNotMatch(slave.mount.log(), /refused by the slave/);
  });
});
