/**
 * Symlinks that work from both sides (issue 21), and never lead out of the slave (issue 13,
 * item 7). The master's kernel follows the targets the mount shows: a slave-side
 * `/etc/x -> /etc/shadow` shown as it is made `cat MNT/etc/x` print the master's /etc/shadow.
 * By default an absolute target is shown under the mount's path (`MNT/etc/shadow`), and a link
 * made through the mount to a path in it is stored with that prefix replaced by `/`.
 *
 * The slave here is a temp export root on this same machine, so a link naming the absolute path
 * of a master file has a twin inside the root: through the mount it must reach the twin, and the
 * master's file (the sentinel) must stay as it was, whether read, written or created through
 * the link.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, readlink, realpath, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameLines } from '../helpers/compare.js';
import { run, sh, waitFor } from '../helpers/processes.js';
import { startBareAgent, startMountProcess, type BareAgent, type MountProcess } from '../helpers/slave.js';

const MASTERS = 'the master\'s own file\n';
const SLAVES = 'the slave\'s file\n';

/** What python3 prints for `code`, with the mount as sys.argv[1]. */
async function python(code: string, mnt: string): Promise<string> {
  const result = await run('python3', ['-c', `import os, sys, pathlib\nM = sys.argv[1]\n${code}`, mnt]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout;
}

describe('symlinks through the mount', () => {
  let slave: BareAgent;
  let mounted: MountProcess;
  let relativeMounted: MountProcess;
  let rawMounted: MountProcess;
  let mnt: string;
  let mntRel: string;
  let mntRaw: string;
  /** A master file, and on the slave, the same path inside the export root. */
  let victimDir: string;
  let victim: string;
  const onSlave = (path: string) => join(slave.root, path);
  /**
   * A link made through a mount is answered at once and applied in order: an fsync of the
   * mount's root returns once it is on the slave (docs/architecture.md, the consistency model).
   */
  const applied = async (mount: string) => { await sh(`sync '${mount}'`); };

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
        await mkdir(join(root, 'victim'));
        await writeFile(join(root, 'victim', 'file'), 'where the slave\'s kernel leads\n');
        await mkdir(join(root, 'opt', 'fw', 'v2'), { recursive: true });
        await writeFile(join(root, 'opt', 'fw', 'v2', 'version'), '2.0\n');
        await symlink('/opt/fw/v2', join(root, 'opt', 'fw', 'current'));
        await symlink(victim, join(root, 'etc', 'x')); // /etc/x -> /etc/shadow
        await symlink(`${'../'.repeat(12)}${victim.slice(1)}`, join(root, 'etc', 'up'));
        await symlink(`${victimDir}/`, join(root, 'etc', 'dir'));
        await symlink(join(victimDir, 'created'), join(root, 'etc', 'new')); // dangling
        await symlink('/', join(root, 'a', 'root'));
        await symlink('..', join(root, 'a', 'rootrel'));
        // From MNT/a, `root` (or `rootrel`) leads to MNT, `..` from there to MNT's parent, the
        // test's temp dir, where `victim/file` is the master's. A ".." after a name must not
        // be shown as it is when that name leads to the root.
        await symlink('root/../victim/file', join(root, 'a', 'mid'));
        await symlink('rootrel/../victim/file', join(root, 'a', 'mid2'));
        await symlink(`${'/a/root/..'.repeat(3)}${victim}`, join(root, 'a', 'mid-abs'));
        // ...and shown as it is where it does not (CPython's tarfile tests make these).
        await symlink('.', join(root, 'a', 'current'));
        await symlink('current/..', join(root, 'a', 'parent'));
        await symlink('victim/../victim/file', join(root, 'a', 'through-dir'));
      },
    });
    mnt = join(slave.tmp, 'mnt');
    mntRel = join(slave.tmp, 'mnt-rel');
    mntRaw = join(slave.tmp, 'mnt-raw');
    for (const dir of [mnt, mntRel, mntRaw]) await mkdir(dir);
    mounted = await startMountProcess(slave.nats.url, mnt, ['--agent', slave.agent.id]);
    relativeMounted = await startMountProcess(slave.nats.url, mntRel, ['--agent', slave.agent.id, '-o', 'symlinks=relative']);
    rawMounted = await startMountProcess(slave.nats.url, mntRaw, ['--agent', slave.agent.id, '-o', 'symlinks=raw']);
  });
  after(async () => {
    await rawMounted?.stop();
    await relativeMounted?.stop();
    await mounted?.stop();
    await slave?.stop();
  });

  async function assertMastersUntouched(): Promise<void> {
    assert.equal(await readFile(victim, 'utf8'), MASTERS, 'the master\'s file changed');
    assert.deepEqual((await sh(`ls -A '${victimDir}'`)).split('\n').filter(Boolean), ['file'], 'a file appeared on the master');
  }

  it('shows a slave\'s absolute link under the mount\'s path, resolving as programs expect, into the slave', async () => {
    assert.equal(await readlink(join(mnt, 'opt', 'fw', 'current')), `${mnt}/opt/fw/v2`);
    assert.equal(await realpath(join(mnt, 'opt', 'fw', 'current')), `${mnt}/opt/fw/v2`);
    assert.equal(await sh(`readlink -f '${mnt}/opt/fw/current'`), `${mnt}/opt/fw/v2\n`);
    assert.equal(await python('print(os.path.realpath(M + "/opt/fw/current"), pathlib.Path(M, "opt/fw/current").resolve())', mnt),
      `${mnt}/opt/fw/v2 ${mnt}/opt/fw/v2\n`);
    assert.equal(await readFile(join(mnt, 'opt', 'fw', 'current', 'version'), 'utf8'), '2.0\n');
  });

  it('reads and writes the slave\'s file through an absolute link naming a master path, never the master\'s', async () => {
    assert.equal(await readlink(join(mnt, 'etc', 'x')), `${mnt}${victim}`);
    assert.equal(await readFile(join(mnt, 'etc', 'x'), 'utf8'), SLAVES);
    assert.equal(await sh(`readlink -f '${mnt}/etc/x'`), `${mnt}${victim}\n`);
    await sh(`echo 'written through /etc/x' > '${mnt}/etc/x'`);
    assert.equal(await readFile(onSlave(victim), 'utf8'), 'written through /etc/x\n');
    await assertMastersUntouched();
  });

  it('stores a link made through the mount to a path in it relative to the slave\'s root, and reads it back as written', async () => {
    await mkdir(join(mnt, 'd'));
    await writeFile(join(mnt, 'd', 'f'), 'in d\n');
    const shown = await python([
      'os.symlink(M + "/d", M + "/abs")',
      'os.symlink(M + "/d/", M + "/abs-slash")',
      'os.symlink(M, M + "/top")',
      'print(os.readlink(M + "/abs"), os.readlink(M + "/abs-slash"), os.readlink(M + "/top"))',
      'print(os.path.isdir(M + "/abs"), open(M + "/abs/f").read(), end="")',
    ].join('\n'), mnt);
    assert.equal(shown, `${mnt}/d ${mnt}/d/ ${mnt}\nTrue in d\n`);
    await applied(mnt);
    assert.equal(await readlink(onSlave('abs')), '/d', 'a valid link on the slave itself');
    assert.equal(await readlink(onSlave('abs-slash')), '/d/');
    assert.equal(await readlink(onSlave('top')), '/');
    // As `ln -s "$PWD/x" y` makes them, in a directory below.
    await sh(`cd '${mnt}/d' && ln -s "$PWD/f" g && cat g && sync '${mnt}'`);
    assert.equal(await readlink(join(mnt, 'd', 'g')), `${mnt}/d/f`);
    assert.equal(await readlink(onSlave('d/g')), '/d/f');
  });

  it('stores an absolute target outside the mount as given (that path on the slave), and reads it back under the mount\'s path', async () => {
    await symlink(join(victimDir, 'made-out'), join(mnt, 'made-out'));
    await applied(mnt);
    assert.equal(await readlink(onSlave('made-out')), join(victimDir, 'made-out'));
    assert.equal(await readlink(join(mnt, 'made-out')), `${mnt}${victimDir}/made-out`);
    await sh(`echo 'created through made-out' > '${mnt}/made-out'`);
    assert.equal(await readFile(join(onSlave(victimDir), 'made-out'), 'utf8'), 'created through made-out\n');
    assert.equal(existsSync(join(victimDir, 'made-out')), false);
    await assertMastersUntouched();
  });

  it('keeps relative targets byte for byte, and clamps one climbing above the root as the slave\'s kernel does', async () => {
    assert.equal(await readlink(join(mnt, 'etc', 'up')), `..${victim}`);
    await sh(`echo 'written through /etc/up' > '${mnt}/etc/up'`);
    assert.equal(await readFile(onSlave(victim), 'utf8'), 'written through /etc/up\n');
    assert.equal(await readFile(join(mnt, 'etc', 'up'), 'utf8'), 'written through /etc/up\n');
    assert.equal(await readlink(join(mnt, 'a', 'rootrel')), '..');
    assert.equal(await readlink(join(mnt, 'a', 'current')), '.');
    // A `..` after a name that does not lead to the root: as stored, and where the slave leads.
    assert.equal(await readlink(join(mnt, 'a', 'parent')), 'current/..');
    assert.equal(await realpath(join(mnt, 'a', 'parent')), mnt);
    assert.equal(await readlink(join(mnt, 'a', 'through-dir')), 'victim/../victim/file');
    assert.equal(await readFile(join(mnt, 'a', 'through-dir'), 'utf8'), 'where a lexical reading leads, on the slave\n');
    await sh(`cd '${mnt}/etc' && ln -s ../a/victim/file rel && ln -s ../../../../x climbs && sync '${mnt}'`);
    assert.equal(await readlink(onSlave('etc/rel')), '../a/victim/file');
    assert.equal(await readlink(join(mnt, 'etc', 'rel')), '../a/victim/file');
    assert.equal(await readlink(onSlave('etc/climbs')), '../../../../x');
    assert.equal(await readlink(join(mnt, 'etc', 'climbs')), '../x');
    await assertMastersUntouched();
  });

  it('a link to a directory keeps its trailing slash and leads into the slave\'s directory', async () => {
    assert.equal(await readlink(join(mnt, 'etc', 'dir')), `${mnt}${victimDir}/`);
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

  it('a ".." after a link to the root cannot step out of the mount: it leads where the slave\'s kernel leads', async () => {
    assert.equal(await readlink(join(mnt, 'a', 'root')), mnt);
    let expected = 'where the slave\'s kernel leads\n';
    for (const link of ['mid', 'mid2']) {
      assert.equal(await readlink(join(mnt, 'a', link)), `${mnt}/victim/file`, link);
      assert.equal(await readFile(join(mnt, 'a', link), 'utf8'), expected, link);
      expected = `written through ${link}\n`;
      await sh(`echo 'written through ${link}' > '${mnt}/a/${link}'`);
      assert.equal(await readFile(onSlave('/victim/file'), 'utf8'), `written through ${link}\n`);
    }
    assert.equal(await readlink(join(mnt, 'a', 'mid-abs')), `${mnt}${victim}`);
    await sh(`echo 'written through mid-abs' > '${mnt}/a/mid-abs'`);
    assert.equal(await readFile(onSlave(victim), 'utf8'), 'written through mid-abs\n');
    await assertMastersUntouched();
  });

  it('a name swapped on the slave for a link to the root changes what a ".." after it shows at once', async () => {
    await mkdir(onSlave('swap/dir'), { recursive: true });
    await symlink('dir/../../victim/file', onSlave('swap/l'));
    // Made on the slave: the mount sees it once the change feed told it (within its coherence bound).
    await waitFor('the mount to see the link made on the slave', async () => (await readlink(join(mnt, 'swap', 'l')).catch(() => null)) !== null, 5000);
    assert.equal(await readlink(join(mnt, 'swap', 'l')), 'dir/../../victim/file');
    assert.equal(await readFile(join(mnt, 'swap', 'l'), 'utf8'), await readFile(onSlave('victim/file'), 'utf8'));
    await sh(`rmdir '${onSlave('swap/dir')}' && ln -s / '${onSlave('swap/dir')}'`);
    // The change feed makes the mount forget `dir`; the link's text was never kept by the kernel.
    for (let tries = 0; await readlink(join(mnt, 'swap', 'l')) !== `${mnt}/victim/file`; tries++) {
      assert.ok(tries < 100, 'the swap never showed');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await sh(`echo 'written after the swap' > '${mnt}/swap/l'`);
    assert.equal(await readFile(onSlave('victim/file'), 'utf8'), 'written after the swap\n');
    await assertMastersUntouched();
  });

  it('find and ls show the links and, following them, only the slave\'s files', async () => {
    const listing = await sh(`ls -l '${mnt}/etc'`);
    assert.ok(listing.includes(` x -> ${mnt}${victim}\n`), listing);
    assert.ok(listing.includes(` dir -> ${mnt}${victimDir}/\n`), listing);
    const links = (await sh(`find '${mnt}/etc' -maxdepth 1 -type l | LC_ALL=C sort`)).split('\n').filter(Boolean);
    assert.deepEqual(links, ['climbs', 'dir', 'new', 'rel', 'up', 'x'].map((name) => `${mnt}/etc/${name}`));
    const followed = await sh(`find -L '${mnt}/etc' '${mnt}/a/mid' '${mnt}/a/mid-abs' -type f -exec cat {} +`);
    assert.ok(followed.length > 0);
    assert.doesNotMatch(followed, /master's own/);
  });

  it('a link\'s size is its stored target\'s length (as sshfs); GNU tools and Python read the whole shown target', async () => {
    const shown = `${mnt}${victim}`;
    assert.equal((await lstat(join(mnt, 'etc', 'x'))).size, Buffer.byteLength(victim));
    assert.equal(await sh(`stat -c %s '${mnt}/etc/x'`), `${Buffer.byteLength(victim)}\n`);
    // Longer than the stored target: tools must not cut it at st_size.
    await sh(`cp -a '${mnt}/etc/x' '${slave.tmp}/x-copy'`);
    assert.equal(await readlink(join(slave.tmp, 'x-copy')), shown);
    assert.ok((await sh(`tar -C '${mnt}/etc' -cf - x | tar -tvf -`)).includes(` x -> ${shown}\n`));
    assert.equal(await python('print(os.readlink(M + "/etc/x"))', mnt), `${shown}\n`);
  });

  it('-o symlinks=relative shows every target relative to the link, inside the mount', async () => {
    assert.equal(await readlink(join(mntRel, 'etc', 'x')), `..${victim}`);
    assert.equal(await readlink(join(mntRel, 'opt', 'fw', 'current')), 'v2');
    assert.equal(await readlink(join(mntRel, 'a', 'root')), '..');
    assert.equal(await readlink(join(mntRel, 'a', 'mid')), '../victim/file');
    assert.equal(await readlink(join(mntRel, 'a', 'parent')), 'current/..');
    assert.equal(await readFile(join(mntRel, 'a', 'mid'), 'utf8'), await readFile(onSlave('victim/file'), 'utf8'));
    // Links made to the mount's own paths are stored for the slave here too.
    await symlink(join(mntRel, 'opt', 'fw', 'v2'), join(mntRel, 'opt', 'fw', 'made'));
    await applied(mntRel);
    assert.equal(await readlink(onSlave('opt/fw/made')), '/opt/fw/v2');
    assert.equal(await readlink(join(mntRel, 'opt', 'fw', 'made')), 'v2');
    await assertMastersUntouched();
  });

  it('-o symlinks=raw keeps every target byte for byte, both ways', async () => {
    assert.equal(await readlink(join(mntRaw, 'etc', 'x')), victim);
    assert.equal(await readlink(join(mntRaw, 'etc', 'up')), `${'../'.repeat(12)}${victim.slice(1)}`);
    assert.equal(await readlink(join(mntRaw, 'etc', 'dir')), `${victimDir}/`);
    assert.equal(await readlink(join(mntRaw, 'a', 'mid')), 'root/../victim/file');
    // Which the master's kernel follows where it leads on the master: what raw is for is a
    // mount placed at the slave's own paths.
    assert.equal(await readFile(join(mntRaw, 'etc', 'x'), 'utf8'), MASTERS);
    await symlink(join(mntRaw, 'opt'), join(mntRaw, 'raw-made'));
    assert.equal(await readlink(onSlave('raw-made')), join(mntRaw, 'opt'));
  });

  it('cp -a and tar round-trip a tree of relative links exactly, and of absolute links made inside the mount', async () => {
    const source = join(slave.tmp, 'source');
    await mkdir(source);
    await sh(`cd '${source}' && mkdir -p sub deep/d2 'ünï' && echo f > sub/f && echo u > 'ünï/f' && `
      + `ln -s sub/f rel && ln -s ./sub/f dot && ln -s ../top up && ln -s sub/ dirlink && ln -s . self && `
      + `ln -s .. parent && ln -s sub//f doubled && ln -s ../../sub/f deep/d2/back && ln -s 'ünï/f' unicode && `
      + `ln -s nowhere dangling && ln -s ./../source/./sub/f dotdot-first && ln -s self/.. self-parent`);
    const links = (dir: string) => sh(`cd '${dir}' && find . -printf '%y %m %s %p -> %l\\n' | LC_ALL=C sort`);
    const expected = await links(source);
    await sh(`cp -a '${source}' '${mnt}/rt'`);
    assertSameLines(await links(onSlave('rt')), expected, 'tree on the slave');
    assertSameLines(await links(join(mnt, 'rt')), expected, 'tree through the mount');
    await sh(`cp -a '${mnt}/rt' '${slave.tmp}/back'`);
    assertSameLines(await links(join(slave.tmp, 'back')), expected, 'tree copied back');
    const listing = (dir: string) => sh(`tar -C '${dir}' -cf - . | tar -tvf - | LC_ALL=C sort`);
    assertSameLines(await listing(join(mnt, 'rt')), await listing(source), 'tar listings');
    // Absolute links to the tree itself, made and copied inside the mount.
    await sh(`cd '${mnt}/rt' && ln -s "$PWD/sub/f" abs-f && ln -s "$PWD/sub" abs-sub && cp -a '${mnt}/rt' '${mnt}/rt2'`);
    assert.equal(await readlink(join(mnt, 'rt2', 'abs-f')), `${mnt}/rt/sub/f`);
    assert.equal(await readlink(onSlave('rt2/abs-sub')), '/rt/sub');
    assert.equal(await readFile(join(mnt, 'rt2', 'abs-f'), 'utf8'), 'f\n');
    await assertMastersUntouched();
  });
});
