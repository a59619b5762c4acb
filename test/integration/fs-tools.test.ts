/**
 * Unmodified programs on the mount: cp -a, tar, git and find must leave on the slave exactly
 * what they leave on a local disk.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameLines } from '../helpers/compare.js';
import { sh, waitFor } from '../helpers/processes.js';
import { startSlave, type Slave } from '../helpers/slave.js';

/**
 * A package-like tree of 900 files in 24 directories (two levels), with README.md and
 * package.json on top: sizes from 0 to 24 KiB, some executable, fixed mtimes. Made here rather
 * than copied from node_modules, so that it does not change with a dependency, and with at most
 * 40 entries per directory, so that a directory's size on the slave's disk does not depend on
 * the order its entries were made in (ext4 grows a large one differently).
 */
async function makePackageTree(dir: string): Promise<void> {
  let seed = 12345;
  const next = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed; };
  await mkdir(dir);
  await writeFile(join(dir, 'README.md'), '# pkg\n\nA tree for the tools to copy.\n');
  await writeFile(join(dir, 'package.json'), '{ "name": "pkg", "version": "1.0.0" }\n');
  for (let d = 0; d < 24; d++) {
    const sub = join(dir, `lib${d % 6}`, `part-${d}`);
    await mkdir(sub, { recursive: true });
    for (let f = 0; f < 36; f++) {
      const file = join(sub, `file-${f}${f % 3 === 0 ? '.js' : '.txt'}`);
      const size = next() % (24 * 1024);
      await writeFile(file, Buffer.alloc(size, `${d}:${f} `));
      if (f % 7 === 0) await chmod(file, 0o755);
      const mtime = 1_600_000_000 + next() % 10_000_000;
      await utimes(file, mtime, mtime);
    }
  }
}

/**
 * A listing that must match between two trees: type, mode, size, links, owner, mtime, target.
 * Times are compared to the second: the mount carries milliseconds (docs/architecture.md).
 */
function describeTree(dir: string): Promise<string> {
  return sh(`cd '${dir}' && find . -printf '%y %m %s %n %U:%G %Ts %p -> %l\\n' | LC_ALL=C sort`);
}

/**
 * The mount shows the tree's one absolute link under its own path, so that it leads to the
 * slave's file and not the master's (docs/security.md); the slave stores it as given, and every
 * other line must match exactly.
 */
function asShown(listing: string, mnt: string): string {
  return listing.replace(' -> /etc/hostname\n', ` -> ${mnt}/etc/hostname\n`);
}

describe('unmodified tools on the mount', () => {
  let slave: Slave;
  let source: string;

  before(async () => {
    slave = await startSlave();
    // A source tree with the shapes tools care about: many files, symlinks, a hard link, a
    // FIFO, an empty dir, an executable, odd names.
    source = join(slave.tmp, 'source');
    await mkdir(source);
    await makePackageTree(join(source, 'pkg'));
    await sh(`cd '${source}' && mkdir empty && `
      + `echo hi > 'name with spaces' && ln 'name with spaces' hardlink && ln -s pkg/package.json link && `
      + `ln -s /etc/hostname abslink && mkfifo fifo && printf '#!/bin/sh\\necho ok\\n' > run.sh && chmod 755 run.sh && `
      + `touch -d '2001-02-03 04:05:06' empty run.sh && `
      + `python3 -c "import os; os.setxattr('run.sh', 'user.origin', b'fixture')"`);
  });
  after(async () => { await slave?.stop(); });

  it('cp -a copies a tree that diff -r finds identical, with the same metadata', async () => {
    // Its last changes (a directory's times) are answered at once: an fsync of the copy returns
    // once the slave has them, before the slave's tree is read directly.
    await sh(`cp -a '${source}' '${slave.mnt}/copy' && sync '${slave.mnt}/copy'`);
    await sh(`diff -r --no-dereference -x fifo -x abslink '${source}' '${slave.mnt}/copy'`);
    await sh(`diff -r --no-dereference -x fifo '${source}' '${slave.root}/copy'`);
    const expected = await describeTree(source);
    assertSameLines(await describeTree(join(slave.root, 'copy')), expected, 'slave tree and source');
    assertSameLines(await describeTree(join(slave.mnt, 'copy')), asShown(expected, slave.mnt), 'mounted tree and source');
    const xattr = `python3 -c "import os, sys; print(os.getxattr(sys.argv[1], 'user.origin'))"`;
    assert.equal(await sh(`${xattr} '${slave.root}/copy/run.sh'`), "b'fixture'\n");
  });

  it('tar x then tar c round-trips the tree', async () => {
    await sh(`tar -C '${source}' -cf '${slave.tmp}/src.tar' .`);
    await sh(`mkdir '${slave.mnt}/untar' && tar -C '${slave.mnt}/untar' -xpf '${slave.tmp}/src.tar' && sync '${slave.mnt}/untar'`);
    assertSameLines(await describeTree(join(slave.root, 'untar')), await describeTree(source), 'untarred tree');
    await sh(`tar -C '${slave.mnt}/untar' -cf '${slave.tmp}/again.tar' .`);
    const listing = (file: string) => sh(`tar -tvf '${file}' | LC_ALL=C sort`);
    assertSameLines(await listing(join(slave.tmp, 'again.tar')), asShown(await listing(join(slave.tmp, 'src.tar')), slave.mnt), 'tar listings');
  });

  it('git init, commit, status and log work and the slave has a valid repository', async () => {
    const repo = join(slave.mnt, 'repo');
    const git = 'git -c user.name=Test -c user.email=test@example.invalid -c init.defaultBranch=main';
    await sh(`mkdir '${repo}' && cp -a '${source}/pkg' '${repo}/pkg' && cd '${repo}' && ${git} init -q && `
      + `${git} add -A && ${git} commit -qm first && echo change >> pkg/package.json && ${git} commit -qam second`);
    assert.equal(await sh(`cd '${repo}' && git status --porcelain`), '');
    assert.equal(await sh(`cd '${repo}' && git log --format=%s`), 'second\nfirst\n');
    const onSlave = join(slave.root, 'repo');
    assert.equal(await sh(`cd '${onSlave}' && git status --porcelain`), '');
    await sh(`cd '${onSlave}' && git fsck --strict --no-progress`);
    await sh(`echo more >> '${repo}/pkg/README.md'`);
    assert.equal(await sh(`cd '${repo}' && git status --porcelain`), ' M pkg/README.md\n');
  });

  it('find -ls on the mount prints what it prints on the slave', async () => {
    await sh(`cp -a '${source}' '${slave.mnt}/findme'`);
    const onMount = await sh(`cd '${slave.mnt}/findme' && find . -ls | LC_ALL=C sort`);
    const onSlave = await sh(`cd '${slave.root}/findme' && find . -ls | LC_ALL=C sort`);
    assertSameLines(onMount, asShown(onSlave, slave.mnt), 'find -ls outputs');
    assert.ok(onMount.split('\n').length > 800);
  });

  it('ls -l and cp -a see each file\'s extended attributes as the slave has them, including ones set there later', async () => {
    const dir = join(slave.root, 'xa');
    await mkdir(dir);
    await sh(`cd '${dir}' && touch plain tagged && python3 -c "import os; os.setxattr('tagged', 'user.tag', b'x')"`);
    await sh(`ls -l '${slave.mnt}/xa'`); // the listing says which entries have none
    const probe = (script: string) => sh(`python3 -c "import os, errno\n${script}"`);
    const mnt = `${slave.mnt}/xa`;
    assert.equal(await probe(`print(os.listxattr('${mnt}/plain'), os.listxattr('${mnt}/tagged'))`), "[] ['user.tag']\n");
    assert.equal(await probe(`print(os.getxattr('${mnt}/tagged', 'user.tag'))`), "b'x'\n");
    assert.equal(await probe(`try:\n  os.getxattr('${mnt}/plain', 'system.posix_acl_access')\nexcept OSError as e:\n  print(errno.errorcode[e.errno])`),
      'ENODATA\n');
    // Set on the slave after the listing: the change feed makes the mount ask again.
    await sh(`python3 -c "import os; os.setxattr('${dir}/plain', 'user.late', b'y')"`);
    await waitFor('the slave\'s new attribute through the mount',
      async () => (await probe(`print(os.listxattr('${mnt}/plain'))`)) === "['user.late']\n", 10_000, 50);
    assert.equal(await probe(`print(os.getxattr('${mnt}/plain', 'user.late'))`), "b'y'\n");
  });

  it('a directory of 6,000 names, 1 to 255 bytes long, some not ASCII, lists as on the slave, by ls -f, ls -l and scandir', async () => {
    // Read in many calls (a few dozen entries each): every one must start where the last ended.
    const dir = join(slave.root, 'big');
    await sh(`python3 -c "
import os
os.mkdir('${dir}')
for i in range(6000):
    stem = ('n%d-' % i) + ('\u00e9' if i % 7 == 0 else 'x') * (i % 200)
    name = stem.encode()[:255].decode('utf-8', 'ignore')
    open(os.path.join('${dir}', name), 'w').close()
"`);
    const onSlave = await sh(`ls -f '${dir}' | LC_ALL=C sort`);
    assert.equal(onSlave.split('\n').filter(Boolean).length, 6002); // with . and ..
    assertSameLines(await sh(`ls -f '${slave.mnt}/big' | LC_ALL=C sort`), onSlave, 'ls -f');
    const long = (root: string) => sh(`ls -l --time-style=+%s '${root}/big' | tail -n +2 | awk '{ $2 = ""; print }' | LC_ALL=C sort`);
    assertSameLines(await long(slave.mnt), await long(slave.root), 'ls -l');
    const scanned = await sh(`python3 -c "import os; print('\\n'.join(sorted(e.name + ' ' + str(e.is_file()) for e in os.scandir('${slave.mnt}/big'))))"`);
    assert.equal(scanned.split('\n').filter(Boolean).length, 6000);
    assert.ok(scanned.split('\n').filter(Boolean).every((line) => line.endsWith(' True')));
  });

  it('rsync -a and rm -rf work', async () => {
    await sh(`rsync -a '${source}/' '${slave.mnt}/synced/' && sync '${slave.mnt}/synced'`);
    await sh(`diff -r --no-dereference -x fifo '${source}' '${slave.root}/synced'`);
    // rm -rf's removals are answered at once: an fsync of the parent returns once they are applied.
    await sh(`rm -rf '${slave.mnt}/synced' && sync '${slave.mnt}'`);
    await sh(`test ! -e '${slave.root}/synced'`);
  });
});
