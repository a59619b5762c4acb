/**
 * Issue 24, point 4: while the change feed is live, an open keeps what the kernel holds of the
 * data (a file's page cache, a directory's listing: keep_cache, cache_readdir), so a file read
 * again is read from the master's memory and a directory listed again never reaches the mount.
 * What the slave changes meanwhile, and what it refused of a write, is never read back.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agentOps } from '../helpers/agent-metrics.js';
import { freePort } from '../helpers/ports.js';
import { pythonOut, run, waitFor } from '../helpers/processes.js';
import { startSlave, startSlaveWithTmpfs, waitForLiveFeed, type Slave } from '../helpers/slave.js';

/** Far below the kernel's 60 s: a change seen this soon was pushed, not expired. */
const SEEN_WITHIN_MS = 2000;

describe('data kept across opens while the feed is live', () => {
  let slave: Slave;
  let port: number;
  let mnt: string;

  /** The kernel requests the mount answered so far, by op: its debug log, counted as it comes. */
  const answered = new Map<string, number>();
  const served = (op: string): number => answered.get(op) ?? 0;

  before(async () => {
    port = await freePort();
    slave = await startSlave({ id: 'page-cache', agentArgs: ['--metrics', `127.0.0.1:${port}`], mountArgs: ['--log-level', 'debug'] });
    mnt = slave.mnt;
    let partial = '';
    slave.mount.child.stderr?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const op = line.includes('"msg":"fuse op"') ? /"op":"([a-z_]+)"/.exec(line)?.[1] : undefined;
        if (op !== undefined) answered.set(op, served(op) + 1);
      }
    });
    await waitForLiveFeed(slave.mount);
  });
  after(async () => {
    await slave?.stop();
  });

  it('reads a file again from the page cache: the agent reads it once', async () => {
    const data = randomBytes(4 << 20);
    await writeFile(join(slave.root, 'big'), data);
    assert.ok((await readFile(join(mnt, 'big'))).equals(data));
    assert.ok(await agentOps(port, 'fs.read') > 0, 'the first read reached the agent');
    // A late event of the slave's write drops the kept pages once: read until three reads in a
    // row reach no agent, within a bound.
    let quiet = 0;
    for (let i = 0; i < 20 && quiet < 3; i++) {
      const before = await agentOps(port, 'fs.read');
      assert.ok((await readFile(join(mnt, 'big'))).equals(data));
      quiet = await agentOps(port, 'fs.read') === before ? quiet + 1 : 0;
    }
    assert.equal(quiet, 3, 'read again: no read reached the agent');
  });

  it('reads a file written through the mount back from the page cache, after a stat brought the slave\'s mtime', async () => {
    // Whole pages: no partial last page the kernel would have to ask for.
    const data = randomBytes(1 << 20);
    await writeFile(join(mnt, 'written'), data);
    // The kernel holds no mtime of a write through the mount (it leaves it to the filesystem):
    // this answer brings the slave's, which must not drop the pages written.
    assert.equal((await stat(join(mnt, 'written'))).size, data.length);
    const reads = await agentOps(port, 'fs.read');
    for (let i = 0; i < 3; i++) assert.ok((await readFile(join(mnt, 'written'))).equals(data));
    assert.equal(await agentOps(port, 'fs.read'), reads, 'read back: no read reached the agent');
    // Changed on the slave afterwards: the feed drops the pages.
    const changed = randomBytes(1 << 20);
    await writeFile(join(slave.root, 'written'), changed);
    await waitFor('the slave\'s new bytes', async () => (await readFile(join(mnt, 'written'))).equals(changed), SEEN_WITHIN_MS, 5);
  });

  it('reads a file written in pieces that are not whole pages back from the page cache; writing it again at once is never undone', async () => {
    // tar's 10 KiB records: the kernel keeps up to date only the pages a write covered whole.
    const releases = served('release');
    const digest = await pythonOut([
      'import hashlib, os, sys',
      'data = os.urandom(300000)',
      'fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)',
      'for at in range(0, len(data), 10240): os.write(fd, data[at:at + 10240])',
      'os.close(fd)',
      'print(hashlib.sha256(data).hexdigest())',
    ].join('\n'), join(mnt, 'records'));
    // The kernel sends the release after close returned: the content goes to it then.
    await waitFor('the written file\'s release', async () => served('release') > releases, SEEN_WITHIN_MS, 5);
    const reads = await agentOps(port, 'fs.read');
    const readsServed = served('read');
    assert.equal(`${createHash('sha256').update(await readFile(join(mnt, 'records'))).digest('hex')}\n`, digest);
    // Its release is logged after any read it made.
    await waitFor('the reader\'s release', async () => served('release') > releases + 1, SEEN_WITHIN_MS, 5);
    assert.equal(served('read'), readsServed, 'read back: no read reached the mount');
    assert.equal(await agentOps(port, 'fs.read'), reads, 'read back: no read reached the agent');
    // Written again, or cut short, right after the release: the mount may still be handing the
    // first content to the kernel, which must not bring it back.
    const out = await pythonOut([
      'import os, sys',
      'd = sys.argv[1]',
      'def write(p, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):',
      '    fd = os.open(p, flags, 0o644)',
      '    for at in range(0, len(data), 10240): os.write(fd, data[at:at + 10240])',
      '    os.close(fd)',
      'bad = 0',
      'for i in range(100):',
      '    p = os.path.join(d, "t%d" % (i % 5))',
      '    first, second = os.urandom(300000 + i), os.urandom(200000 + i)',
      '    write(p, first)',
      '    if i % 2: write(p, second)',
      '    else:',
      '        os.truncate(p, 1000)',
      '        second = first[:1000]',
      '    with open(p, "rb") as f: bad += f.read() != second',
      'print(bad)',
    ].join('\n'), mnt);
    assert.equal(out, '0\n', 'a file read back as written last');
    // Changed on the slave afterwards: the feed drops what was stored.
    const changed = randomBytes(300000);
    await writeFile(join(slave.root, 'records'), changed);
    await waitFor('the slave\'s new bytes', async () => (await readFile(join(mnt, 'records'))).equals(changed), SEEN_WITHIN_MS, 5);
  });

  it('reads what the slave changed in place, though it kept the size and put the time back', async () => {
    const path = join(slave.root, 'in-place');
    await writeFile(path, Buffer.alloc(1 << 20, 'a'));
    assert.equal((await readFile(join(mnt, 'in-place'))).toString('latin1', 0, 4), 'aaaa');
    await readFile(join(mnt, 'in-place')); // kept now
    await pythonOut([
      'import os, sys',
      'p = sys.argv[1]',
      'st = os.stat(p)',
      "with open(p, 'r+b') as f:",
      '    f.seek(500000)',
      "    f.write(b'CHANGED')",
      'os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))',
    ].join('\n'), path);
    const want = await readFile(path);
    await waitFor('the slave\'s bytes', async () => (await readFile(join(mnt, 'in-place'))).equals(want), SEEN_WITHIN_MS, 5);
    // Appended to on the slave, read through a descriptor opened before.
    const held = await pythonOut([
      'import os, sys, time',
      'fd = os.open(sys.argv[1], os.O_RDONLY)',
      'os.read(fd, 1 << 20)',
      "open(sys.argv[2], 'ab').write(b'tail')",
      'deadline = time.time() + 2',
      'while time.time() < deadline:',
      '    if os.pread(fd, 10, 1 << 20) == b"tail": break',
      '    time.sleep(0.005)',
      'print(os.pread(fd, 10, 1 << 20).decode())',
    ].join('\n'), join(mnt, 'in-place'), path);
    assert.equal(held, 'tail\n');
  });

  it('reads what the slave changed in a file read ahead through a descriptor held open, and after it', async () => {
    const path = join(slave.root, 'read-ahead');
    await writeFile(path, Buffer.alloc(8 << 20, 'o'));
    const out = await pythonOut([
      'import os, sys, time',
      'mounted, there = sys.argv[1], sys.argv[2]',
      'fd = os.open(mounted, os.O_RDONLY)',
      'os.read(fd, 1 << 20)  # sequential from the start: the mount fetches chunks ahead',
      'time.sleep(0.2)',
      "with open(there, 'r+b') as f:",
      '    f.seek(5 << 20)',
      "    f.write(b'NEW')",
      'deadline = time.time() + 2',
      "while os.pread(fd, 3, 5 << 20) != b'NEW' and time.time() < deadline: time.sleep(0.005)",
      'print(os.pread(fd, 3, 5 << 20).decode())',
      'os.close(fd)',
      "with open(mounted, 'rb') as f: data = f.read()",
      "print(data[(5 << 20):(5 << 20) + 3].decode(), data.count(b'o'))",
    ].join('\n'), join(mnt, 'read-ahead'), path);
    assert.equal(out, `NEW\nNEW ${(8 << 20) - 3}\n`);
  });

  it('lists a directory again without the mount; names made on either side show at once', async () => {
    const dir = join(slave.root, 'listed');
    await mkdir(dir);
    for (let i = 0; i < 30; i++) await writeFile(join(dir, `f${i}`), '');
    const names = (await readdir(dir)).sort();
    // The feed may still bring the slave's creates (each drops the kept listing): listed until
    // three listings in a row reach no mount, within a bound.
    let quiet = 0;
    for (let i = 0; i < 20 && quiet < 3; i++) {
      const before = served('readdir');
      assert.deepEqual((await readdir(join(mnt, 'listed'))).sort(), names);
      quiet = served('readdir') === before ? quiet + 1 : 0;
      if (quiet === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(quiet, 3, 'listed again: no readdir reached the mount');

    await writeFile(join(dir, 'made-on-the-slave'), '');
    await waitFor('a name made on the slave', async () => (await readdir(join(mnt, 'listed'))).includes('made-on-the-slave'), SEEN_WITHIN_MS, 5);
    await writeFile(join(mnt, 'listed', 'made-here'), 'x');
    assert.ok((await readdir(join(mnt, 'listed'))).includes('made-here'));
    await unlink(join(mnt, 'listed', 'f0'));
    await rename(join(mnt, 'listed', 'f1'), join(mnt, 'listed', 'renamed'));
    const listed = await readdir(join(mnt, 'listed'));
    assert.ok(!listed.includes('f0') && !listed.includes('f1') && listed.includes('renamed'), listed.join(' '));
    await unlink(join(dir, 'f2'));
    await waitFor('a name removed on the slave', async () => !(await readdir(join(mnt, 'listed'))).includes('f2'), SEEN_WITHIN_MS, 5);
    await waitFor('the same names on both sides', async () => {
      return (await readdir(join(mnt, 'listed'))).sort().join() === (await readdir(dir)).sort().join();
    }, SEEN_WITHIN_MS, 5);
  });
});

describe('data not kept across opens', () => {
  it('with -o cache=no: each open reads the file from the slave again', async () => {
    const port = await freePort();
    const slave = await startSlave({ id: 'no-cache', agentArgs: ['--metrics', `127.0.0.1:${port}`], mountArgs: ['-o', 'cache=no', '--log-level', 'info'] });
    const { mnt } = slave;
    try {
      await waitForLiveFeed(slave.mount);
      const data = randomBytes(1 << 20);
      await writeFile(join(slave.root, 'f'), data);
      assert.ok((await readFile(join(mnt, 'f'))).equals(data));
      const reads = await agentOps(port, 'fs.read');
      assert.ok((await readFile(join(mnt, 'f'))).equals(data));
      assert.ok(await agentOps(port, 'fs.read') > reads, 'read again: the agent was asked');
    } finally {
      await slave.stop();
    }
  });

  it('after a write the slave refused: what was read back is what the slave has', async () => {
    const slave = await startSlaveWithTmpfs({ id: 'refused-write' }, '1m');
    const { mnt, small } = slave;
    try {
      await writeFile(join(small, 'f'), Buffer.alloc(8192, 'a'));
      assert.equal((await readFile(join(mnt, 'small', 'f'))).toString(), 'a'.repeat(8192)); // kept from here
      // Every block taken on the slave's side.
      await run('dd', ['if=/dev/zero', `of=${join(small, 'fill')}`, 'bs=64k', 'status=none']);
      const out = await pythonOut([
        'import errno, os, sys',
        'fd = os.open(sys.argv[1], os.O_WRONLY)',
        "os.pwrite(fd, b'b' * 262144, 0)",
        'try:',
        '    os.close(fd)',
        "    print('close ok')",
        'except OSError as e:',
        "    print('close', errno.errorcode[e.errno])",
      ].join('\n'), join(mnt, 'small', 'f'));
      assert.equal(out, 'close ENOSPC\n');
      const slaveHas = await readFile(join(small, 'f'));
      await waitFor('the slave\'s size', async () => (await stat(join(mnt, 'small', 'f'))).size === slaveHas.length, SEEN_WITHIN_MS, 5);
      assert.ok((await readFile(join(mnt, 'small', 'f'))).equals(slaveHas), 'read back: the slave\'s bytes');
    } finally {
      await slave.stop();
    }
  });
});
