/**
 * Refusals reach programs with the errno they would see on a local disk: EROFS from a
 * read-only agent, EACCES from an agent that runs as a user without permission, and the rare
 * refusal of a root agent after the mount reported a pipelined change done (docs/architecture.md).
 */
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LONG_PATH_MAX } from '../../protocol/index.js';
import { run, sh } from '../helpers/processes.js';
import { startSlave, type Slave } from '../helpers/slave.js';

const NOBODY = 65534;

/** Runs python3 on these lines (with `os` imported) and returns what it printed. */
async function python(lines: string[]): Promise<string> {
  const result = await run('python3', ['-c', ['import os', ...lines].join('\n')]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout;
}

async function failsWith(script: string, message: RegExp): Promise<void> {
  const result = await run('sh', ['-c', script]);
  assert.notEqual(result.code, 0, `${script} should fail`);
  assert.match(result.stderr, message, script);
}

describe('read-only agent', () => {
  let slave: Slave;
  before(async () => {
    slave = await startSlave({ agentArgs: ['--read-only'] });
    await writeFile(join(slave.root, 'existing'), 'data');
  });
  after(async () => { await slave?.stop(); });

  it('reads work', async () => {
    assert.equal(await sh(`cat '${slave.mnt}/existing'`), 'data');
  });

  it('every change fails with EROFS', async () => {
    const readOnly = /Read-only file system/;
    await failsWith(`echo x > '${slave.mnt}/new'`, readOnly);
    await failsWith(`echo x >> '${slave.mnt}/existing'`, readOnly);
    await failsWith(`mkdir '${slave.mnt}/d'`, readOnly);
    await failsWith(`rm '${slave.mnt}/existing'`, readOnly);
    await failsWith(`mv '${slave.mnt}/existing' '${slave.mnt}/moved'`, readOnly);
    await failsWith(`chmod 600 '${slave.mnt}/existing'`, readOnly);
    await failsWith(`touch '${slave.mnt}/existing'`, readOnly);
    await failsWith(`ln -s x '${slave.mnt}/link'`, readOnly);
    assert.equal(await sh(`cat '${slave.root}/existing'`), 'data');
  });
});

describe('agent without permission', () => {
  let slave: Slave;
  before(async () => {
    slave = await startSlave({
      agentSpawn: { uid: NOBODY, gid: NOBODY },
      // The export root must be reachable by the unprivileged agent.
      agentArgs: [],
    }).catch(async (err: unknown) => { throw err; });
  });
  after(async () => { await slave?.stop(); });

  it('answers EACCES where the slave user may not write or read', async () => {
    await mkdir(join(slave.root, 'locked'), { mode: 0o555 });
    await chmod(join(slave.root, 'locked'), 0o555);
    await writeFile(join(slave.root, 'secret'), 'no', { mode: 0o600 });
    await writeFile(join(slave.root, 'frozen'), 'fixed', { mode: 0o444 });
    const denied = /Permission denied/;
    await failsWith(`echo x > '${slave.mnt}/locked/new'`, denied);
    await failsWith(`cat '${slave.mnt}/secret'`, denied);
    await failsWith(`echo x >> '${slave.mnt}/frozen'`, denied);
    await failsWith(`chmod 777 '${slave.mnt}/frozen'`, /Operation not permitted/);
  });

  it('refuses a chown of an open file at the call itself: nothing is pipelined for a non-root agent', async () => {
    const file = join(slave.root, 'mine');
    await writeFile(file, '');
    await chown(file, NOBODY, NOBODY);
    const out = await python([
      `fd = os.open('${slave.mnt}/mine', os.O_WRONLY)`,
      'try:',
      '    os.fchown(fd, 0, 0)',
      "    print('fchown ok')",
      'except PermissionError:',
      "    print('fchown EPERM')",
      'os.close(fd)',
      "print('closed')",
    ]);
    assert.equal(out, 'fchown EPERM\nclosed\n');
  });
});

/**
 * A root agent is trusted to carry out chmod, chown and utimens of open files and unlinks of
 * known files, so the mount does not wait for those replies. An immutable or append-only file
 * (chattr) refuses them even to root: the refusal must still reach the program, and nothing is
 * lost or left wrong in the cache.
 */
describe('root agent refusing a pipelined change', () => {
  let slave: Slave;
  let chattrWorks = false;
  before(async () => {
    slave = await startSlave();
    await writeFile(join(slave.root, 'probe'), '');
    chattrWorks = (await run('chattr', ['+i', join(slave.root, 'probe')])).code === 0;
    if (chattrWorks) await run('chattr', ['-i', join(slave.root, 'probe')]);
  });
  after(async () => {
    if (slave) await run('chattr', ['-R', '-ia', slave.root]);
    await slave?.stop();
  });

  it('an fchmod refused by the slave fails the file\'s fsync with EPERM, and stat shows the real mode', async (t) => {
    if (!chattrWorks) return t.skip(`chattr does not work on ${slave.root}'s filesystem`);
    const file = join(slave.root, 'append-only');
    await writeFile(file, 'log\n', { mode: 0o644 });
    await sh(`chattr +a '${file}'`);
    const out = await python([
      `fd = os.open('${slave.mnt}/append-only', os.O_WRONLY | os.O_APPEND)`,
      "os.write(fd, b'more\\n')",
      'os.fchmod(fd, 0o600)',
      "print('fchmod returned')",
      // close waits for the file's data only (as NFS); fsync is the barrier that reports the rest.
      'try:',
      '    os.fsync(fd)',
      "    print('fsync ok')",
      'except PermissionError:',
      "    print('fsync EPERM')",
      'os.close(fd)',
      `print(oct(os.stat('${slave.mnt}/append-only').st_mode & 0o777))`,
    ]);
    assert.equal(out, 'fchmod returned\nfsync EPERM\n0o644\n');
    assert.equal(await sh(`cat '${file}'`), 'log\nmore\n');
  });

  it('an unlink refused by the slave leaves the file visible and its directory not removable', async (t) => {
    if (!chattrWorks) return t.skip(`chattr does not work on ${slave.root}'s filesystem`);
    await mkdir(join(slave.root, 'keep'));
    await writeFile(join(slave.root, 'keep', 'a'), 'a');
    await writeFile(join(slave.root, 'keep', 'pinned'), 'pinned');
    await sh(`chattr +i '${slave.root}/keep/pinned'`);
    // The removals may be answered before the slave refuses them: then the refusal comes at the
    // fsync of the directory (docs/architecture.md, late refusals), which `sync DIR` makes.
    const result = await run('sh', ['-c', `rm -rf '${slave.mnt}/keep' && sync '${slave.mnt}'`]);
    assert.notEqual(result.code, 0, 'rm -rf or the fsync after it must fail');
    assert.match(result.stderr, /Directory not empty|Operation not permitted/);
    assert.equal(await sh(`ls '${slave.mnt}/keep'`), 'pinned\n');
    assert.equal(await sh(`cat '${slave.mnt}/keep/pinned'`), 'pinned');
  });
});

/**
 * A program deep in the mount, using short relative paths, reaches a path longer than a request
 * carries (LONG_PATH_MAX; shorter ones the agent names however long: docs/architecture.md, "Long
 * paths"). That is ENAMETOOLONG, as a slave's kernel says for a path it cannot take, never a
 * malformed request (EPROTO), and nothing is made.
 */
describe('a path longer than a request carries', () => {
  let slave: Slave;
  const part = 'd'.repeat(250);
  before(async () => { slave = await startSlave(); });
  after(async () => { await slave?.stop(); });

  it('is ENAMETOOLONG for every call that names it, and the directories above it still work', async () => {
    const out = await python([
      'import errno',
      `os.chdir('${slave.mnt}')`,
      `part = "${part}"`,
      'made = 0',
      'try:',
      '    while made < 200:',
      '        os.mkdir(part)',
      '        os.chdir(part)',
      '        made += 1',
      'except OSError as e:',
      '    print(made, errno.errorcode[e.errno])',
      'os.chdir("..")',
      'deeper = part + "/" + part',
      'with open("f", "w") as f: f.write("here")',
      'for name, call in (("create", lambda: os.close(os.open(deeper, os.O_WRONLY | os.O_CREAT, 0o644))), ("stat", lambda: os.stat(deeper)),',
      '                   ("symlink", lambda: os.symlink("x", deeper)), ("rename", lambda: os.rename("f", deeper))):',
      '    try:',
      '        call()',
      '        print(name, "ok")',
      '    except OSError as e:',
      '        print(name, errno.errorcode[e.errno])',
      'print(open("f").read(), sorted(os.listdir(".")), os.listdir(part))',
    ]);
    const lines = out.trim().split('\n');
    // Levels of 251 characters below the mount's root: as many as fit in LONG_PATH_MAX, not one more.
    const fit = Math.floor(LONG_PATH_MAX / 251);
    assert.equal(lines[0], `${fit} ENAMETOOLONG`);
    assert.deepEqual(lines.slice(1), ['create ENAMETOOLONG', 'stat ENAMETOOLONG', 'symlink ENAMETOOLONG', 'rename ENAMETOOLONG', `here ['${part}', 'f'] []`]);
  });
});
