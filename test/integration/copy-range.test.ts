/**
 * copy_file_range(2) between two files of the mount is made by the slave: the bytes never cross
 * the link (cp of a large file on the slave costs round trips, not its size twice over the
 * network). It comes after the writes made before it to either file, leaves nothing stale in what
 * the master cached, and a copy the slave cannot make is made by the master's kernel instead.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agentOps } from '../helpers/agent-metrics.js';
import { freePort } from '../helpers/ports.js';
import { pythonOut, run } from '../helpers/processes.js';
import { startSlaveWithTmpfs, type Slave } from '../helpers/slave.js';

describe('copy_file_range through the mount', () => {
  let slave: Slave & { readonly small: string };
  let mnt: string;
  let port: number;

  before(async () => {
    port = await freePort();
    slave = await startSlaveWithTmpfs({ id: 'copy-range', agentArgs: ['--metrics', `127.0.0.1:${port}`] }, '4m');
    mnt = slave.mnt;
  });
  after(async () => {
    await slave?.stop();
  });

  it('copies a file on the slave with cp: its bytes, in pieces, none of them read over the link', async () => {
    const data = randomBytes(70 << 20); // more than one request copies (64 MiB)
    await writeFile(join(slave.root, 'big'), data);
    const [reads, copies] = [await agentOps(port, 'fs.read'), await agentOps(port, 'fs.copyrange')];
    const cp = await run('cp', [join(mnt, 'big'), join(mnt, 'big-copy')]);
    assert.equal(cp.code, 0, cp.stderr);
    assert.ok((await readFile(join(slave.root, 'big-copy'))).equals(data), 'the slave\'s copy');
    assert.ok((await readFile(join(mnt, 'big-copy'))).equals(data), 'read through the mount');
    assert.ok(await agentOps(port, 'fs.copyrange') - copies >= 2, 'copied by the agent, in two requests at least');
    // Only the read back above read: none for the copy. 70 MiB in reads of at most 1 MiB is 70.
    assert.ok(await agentOps(port, 'fs.read') - reads <= 80, 'no read for the copy');
  });

  it('copies what was written just before to either file, into a file whose pages the master holds', async () => {
    const out = await pythonOut([
      'import os, sys',
      'src, dst = sys.argv[1], sys.argv[2]',
      'fs = os.open(src, os.O_CREAT | os.O_RDWR, 0o644); os.write(fs, bytes(range(256)) * 64)', // 16 KiB, held
      'fd = os.open(dst, os.O_CREAT | os.O_RDWR, 0o644); os.write(fd, b"d" * 20000)', // held too
      'r = os.open(dst, os.O_RDONLY); os.read(r, 1 << 20)', // its pages in the master's page cache
      'n = os.copy_file_range(fs, fd, 5000, 1000, 300)', // source 1000.. to dst 300..
      'os.lseek(r, 0, os.SEEK_SET); got = os.read(r, 1 << 20)',
      'want = bytearray(b"d" * 20000); want[300:5300] = (bytes(range(256)) * 64)[1000:6000]',
      'print(n, got == bytes(want), os.fstat(fd).st_size)',
    ].join('\n'), join(mnt, 'src'), join(mnt, 'dst'));
    assert.equal(out, '5000 True 20000\n');
    const want = Buffer.alloc(20000, 'd');
    Buffer.from(Array.from({ length: 16384 }, (_, i) => i % 256)).copy(want, 300, 1000, 6000);
    assert.ok((await readFile(join(slave.root, 'dst'))).equals(want), 'the slave\'s file');
  });

  it('copies to a filesystem the slave cannot copy to by the master\'s reads and writes', async () => {
    // From the export's disk to the tmpfs mounted below it: another filesystem on the slave.
    const data = randomBytes(100_000);
    await writeFile(join(slave.root, 'across'), data);
    const out = await pythonOut([
      'import os, sys',
      'a = os.open(sys.argv[1], os.O_RDONLY); b = os.open(sys.argv[2], os.O_CREAT | os.O_WRONLY, 0o644)',
      'done = 0',
      'while done < 100000:',
      '    n = os.copy_file_range(a, b, 100000 - done)',
      '    if n == 0: break',
      '    done += n',
      'print(done)',
    ].join('\n'), join(mnt, 'across'), join(mnt, 'small', 'across'));
    assert.equal(out, '100000\n');
    assert.ok((await readFile(join(slave.root, 'small', 'across'))).equals(data));
  });

  it('answers what it copied before the slave\'s disk filled, and ENOSPC to the next call', async () => {
    // Both files on the 4 MiB tmpfs: 3 MiB copied into room for about 1.
    await writeFile(join(slave.small, 'three'), randomBytes(3 << 20));
    const out = await pythonOut([
      'import errno, os, sys',
      'a = os.open(sys.argv[1], os.O_RDONLY); b = os.open(sys.argv[2], os.O_CREAT | os.O_WRONLY, 0o644)',
      'done, error = 0, None',
      'while done < 3 << 20:',
      '    try:',
      '        n = os.copy_file_range(a, b, (3 << 20) - done)',
      '    except OSError as e:',
      '        error = errno.errorcode[e.errno]; break',
      '    if n == 0: break',
      '    done += n',
      'print(error, done, os.fstat(b).st_size)',
    ].join('\n'), join(mnt, 'small', 'three'), join(mnt, 'small', 'copy'));
    const [error, done, size] = out.trim().split(' ');
    assert.equal(error, 'ENOSPC');
    assert.ok(Number(done) > 0 && Number(done) < 3 << 20, `${done} bytes copied`);
    assert.equal(size, done);
    assert.equal((await readFile(join(slave.small, 'copy'))).length, Number(done), 'the slave\'s file holds what was answered');
  });
});
