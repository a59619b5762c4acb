/**
 * Issue 13, item 7: symlinks lead into the slave, never out of it. The master's kernel follows
 * the targets the mount shows; a slave-side `/etc/x -> /etc/shadow` shown as it is made
 * `cat MNT/etc/x` print the master's /etc/shadow and `echo x > MNT/etc/x` overwrite it.
 *
 * The slave here is a temp export root on this same machine, so a link naming the absolute path
 * of a master file has a twin inside the root: through the mount it must reach the twin, and the
 * master's file must stay as it was, whether read, written or created through the link.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameLines } from '../helpers/compare.js';
import { sh } from '../helpers/processes.js';
import { startBareAgent, startMountProcess, type BareAgent, type MountProcess } from '../helpers/slave.js';

const MASTERS = 'the master\'s own file\n';
const SLAVES = 'the slave\'s file\n';

describe('symlinks through the mount', () => {
  let slave: BareAgent;
  let mounted: MountProcess;
  let rawMounted: MountProcess;
  let mnt: string;
  let mntRaw: string;
  /** A master file, and on the slave, the same path inside the export root. */
  let victimDir: string;
  let victim: string;
  const onSlave = (path: string) => join(slave.root, path);

  before(async () => {
    slave = await startBareAgent({
      id: 'symlinks',
      prepare: async (root, tmp) => {
        victimDir = join(tmp, 'victim');
        victim = join(victimDir, 'file');
        await mkdir(victimDir);
        await writeFile(victim, MASTERS);
        await mkdir(join(root, victimDir), { recursive: true });
        await writeFile(join(root, victim), SLAVES);
        await mkdir(join(root, 'etc'));
        await mkdir(join(root, 'a', 'victim'), { recursive: true });
        await writeFile(join(root, 'a', 'victim', 'file'), 'where a lexical reading leads, on the slave\n');
        await symlink(victim, join(root, 'etc', 'x')); // /etc/x -> /etc/shadow
        await symlink(`${'../'.repeat(12)}${victim.slice(1)}`, join(root, 'etc', 'up'));
        await symlink(`${victimDir}/`, join(root, 'etc', 'dir'));
        await symlink(join(victimDir, 'created'), join(root, 'etc', 'new')); // dangling
        await symlink('/', join(root, 'a', 'root'));
        await symlink('..', join(root, 'a', 'rootrel'));
        // From MNT/a, `root` (or `rootrel`) leads to MNT, `..` from there to MNT's parent, the
        // test's temp dir, where `victim/file` is the master's. A ".." after a name must not
        // be shown as it is, even when it stays inside the root lexically.
        await symlink('root/../victim/file', join(root, 'a', 'mid'));
        await symlink('rootrel/../victim/file', join(root, 'a', 'mid2'));
      },
    });
    mnt = join(slave.tmp, 'mnt');
    mntRaw = join(slave.tmp, 'mnt-raw');
    await mkdir(mnt);
    await mkdir(mntRaw);
    mounted = await startMountProcess(slave.nats.url, mnt, ['--agent', slave.agent.id]);
    rawMounted = await startMountProcess(slave.nats.url, mntRaw, ['--agent', slave.agent.id, '-o', 'symlinks=raw']);
  });
  after(async () => {
    await rawMounted?.stop();
    await mounted?.stop();
    await slave?.stop();
  });

  async function assertMastersUntouched(): Promise<void> {
    assert.equal(await readFile(victim, 'utf8'), MASTERS, 'the master\'s file changed');
    assert.deepEqual((await sh(`ls -A '${victimDir}'`)).split('\n').filter(Boolean), ['file'], 'a file appeared on the master');
  }

  it('an absolute link shows relative to itself and reads and writes the slave\'s file, never the master\'s', async () => {
    assert.equal(await readlink(join(mnt, 'etc', 'x')), `..${victim}`);
    assert.equal(await readFile(join(mnt, 'etc', 'x'), 'utf8'), SLAVES);
    assert.equal(await sh(`readlink -f '${mnt}/etc/x'`), `${mnt}${victim}\n`);
    await sh(`echo 'written through /etc/x' > '${mnt}/etc/x'`);
    assert.equal(await readFile(onSlave(victim), 'utf8'), 'written through /etc/x\n');
    await assertMastersUntouched();
  });

  it('a relative link climbing above the root is clamped there, as on the slave', async () => {
    assert.equal(await readlink(join(mnt, 'etc', 'up')), `..${victim}`);
    await sh(`echo 'written through /etc/up' > '${mnt}/etc/up'`);
    assert.equal(await readFile(onSlave(victim), 'utf8'), 'written through /etc/up\n');
    assert.equal(await readFile(join(mnt, 'etc', 'up'), 'utf8'), 'written through /etc/up\n');
    await assertMastersUntouched();
  });

  it('a link to a directory keeps its trailing slash and leads into the slave\'s directory', async () => {
    assert.equal(await readlink(join(mnt, 'etc', 'dir')), `..${victimDir}/`);
    assert.equal((await stat(join(mnt, 'etc', 'dir'))).isDirectory(), true);
    await sh(`echo 'made through a directory link' > '${mnt}/etc/dir/through-dir'`);
    assert.equal(await readFile(join(onSlave(victimDir), 'through-dir'), 'utf8'), 'made through a directory link\n');
    await assertMastersUntouched();
  });

  it('a dangling absolute link creates its file on the slave', async () => {
    await sh(`echo 'created through a dangling link' > '${mnt}/etc/new'`);
    assert.equal(await readFile(join(onSlave(victimDir), 'created'), 'utf8'), 'created through a dangling link\n');
    assert.equal(existsSync(join(victimDir, 'created')), false);
    await assertMastersUntouched();
  });

  it('a ".." after a link to the root cannot step out of the mount', async () => {
    assert.equal(await readlink(join(mnt, 'a', 'root')), '..');
    assert.equal(await readlink(join(mnt, 'a', 'rootrel')), '..');
    let expected = 'where a lexical reading leads, on the slave\n';
    for (const link of ['mid', 'mid2']) {
      assert.equal(await readFile(join(mnt, 'a', link), 'utf8'), expected, link);
      assert.equal(await readlink(join(mnt, 'a', link)), 'victim/file', link);
      expected = `written through ${link}\n`;
      await sh(`echo 'written through ${link}' > '${mnt}/a/${link}'`);
      assert.equal(await readFile(onSlave('/a/victim/file'), 'utf8'), `written through ${link}\n`);
    }
    await assertMastersUntouched();
  });

  it('find and ls show the links and, following them, only the slave\'s files', async () => {
    const listing = await sh(`ls -l '${mnt}/etc'`);
    assert.match(listing, new RegExp(` x -> \\.\\.${victim}\n`));
    assert.match(listing, / dir -> \.\.\S*\/victim\/\n/);
    assert.equal(await sh(`find '${mnt}/etc' -type l | LC_ALL=C sort`),
      ['dir', 'new', 'up', 'x'].map((name) => `${mnt}/etc/${name}\n`).join(''));
    const followed = await sh(`find -L '${mnt}/etc' '${mnt}/a/mid' -type f -exec cat {} +`);
    assert.ok(followed.length > 0);
    assert.doesNotMatch(followed, /master's own/);
  });

  it('a link\'s size is its stored target\'s length (as sshfs); GNU tools still read the whole shown target', async () => {
    const shown = `..${victim}`;
    assert.equal((await lstat(join(mnt, 'etc', 'x'))).size, Buffer.byteLength(victim));
    assert.equal(await sh(`stat -c %s '${mnt}/etc/x'`), `${Buffer.byteLength(victim)}\n`);
    // Longer than the stored target: tools must not cut it at st_size.
    await sh(`cp -a '${mnt}/etc/x' '${slave.tmp}/x-copy'`);
    assert.equal(await readlink(join(slave.tmp, 'x-copy')), shown);
    assert.match(await sh(`tar -C '${mnt}/etc' -cf - x | tar -tvf -`), new RegExp(` x -> \\.\\.${victim}\n`));
    assert.equal(await sh(`python3 -c "import os, sys; print(os.readlink(sys.argv[1]))" '${mnt}/etc/x'`), `${shown}\n`);
  });

  it('-o symlinks=raw shows targets as stored', async () => {
    assert.equal(await readlink(join(mntRaw, 'etc', 'x')), victim);
    assert.equal(await readlink(join(mntRaw, 'etc', 'up')), `${'../'.repeat(12)}${victim.slice(1)}`);
    assert.equal(await readlink(join(mntRaw, 'etc', 'dir')), `${victimDir}/`);
    assert.equal(await readlink(join(mntRaw, 'a', 'mid')), 'root/../victim/file');
    // Which the master's kernel follows where it leads on the master: what raw is for is a
    // mount placed at the slave's own paths.
    assert.equal(await readFile(join(mntRaw, 'etc', 'x'), 'utf8'), MASTERS);
  });

  it('links made through the mount are stored on the slave as given', async () => {
    await sh(`ln -s /etc/hostname '${mnt}/made-abs' && ln -s ../../../../x '${mnt}/etc/made-up' && ln -s ../etc/ '${mnt}/a/made-dir'`);
    assert.equal(await readlink(onSlave('made-abs')), '/etc/hostname');
    assert.equal(await readlink(onSlave('etc/made-up')), '../../../../x');
    assert.equal(await readlink(onSlave('a/made-dir')), '../etc/');
    assert.equal(await readlink(join(mnt, 'made-abs')), 'etc/hostname');
    assert.equal(await readlink(join(mnt, 'etc', 'made-up')), '../x');
    assert.equal(await readlink(join(mnt, 'a', 'made-dir')), '../etc/');
    assert.equal(await readlink(join(mntRaw, 'made-abs')), '/etc/hostname');
  });

  it('cp -a and tar round-trip a tree of relative links exactly', async () => {
    const source = join(slave.tmp, 'source');
    await mkdir(source);
    await sh(`cd '${source}' && mkdir -p sub deep/d2 'ünï' && echo f > sub/f && echo u > 'ünï/f' && `
      + `ln -s sub/f rel && ln -s ./sub/f dot && ln -s ../top up && ln -s sub/ dirlink && ln -s . self && `
      + `ln -s .. parent && ln -s sub//f doubled && ln -s ../../sub/f deep/d2/back && ln -s 'ünï/f' unicode && `
      + `ln -s nowhere dangling && ln -s ./../source/./sub/f dotdot-first`);
    const links = (dir: string) => sh(`cd '${dir}' && find . -printf '%y %m %s %p -> %l\\n' | LC_ALL=C sort`);
    const expected = await links(source);
    await sh(`cp -a '${source}' '${mnt}/rt'`);
    assertSameLines(await links(onSlave('rt')), expected, 'tree on the slave');
    assertSameLines(await links(join(mnt, 'rt')), expected, 'tree through the mount');
    await sh(`cp -a '${mnt}/rt' '${slave.tmp}/back'`);
    assertSameLines(await links(join(slave.tmp, 'back')), expected, 'tree copied back');
    const listing = (dir: string) => sh(`tar -C '${dir}' -cf - . | tar -tvf - | LC_ALL=C sort`);
    assertSameLines(await listing(join(mnt, 'rt')), await listing(source), 'tar listings');
    await assertMastersUntouched();
  });
});
