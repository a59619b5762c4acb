/**
 * Sparse files through the mount. fallocate(2): each mode the kernel hands a FUSE filesystem
 * (allocate, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE) reaches the slave's file in order with the
 * writes before it, leaving the bytes, size and blocks a local fallocate leaves; nothing the
 * master cached of the file outlives a hole; what the slave's filesystem cannot do, or has no
 * room for, is the program's errno, and fallocate keeps working after it. lseek(2)'s SEEK_DATA
 * and SEEK_HOLE find the slave's holes, so `cp --sparse` copies them as holes.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pythonOut, run } from '../helpers/processes.js';
import { startSlaveWithTmpfs, type Slave } from '../helpers/slave.js';

/** Python with fallocate(2) by libc (its os module has posix_fallocate only), raising OSError. */
const PRELUDE = [
  'import ctypes, errno, hashlib, os, sys',
  'libc = ctypes.CDLL(None, use_errno=True)',
  'libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]',
  'def falloc(fd, mode, off, n):',
  '    if libc.fallocate(fd, mode, off, n) != 0:',
  '        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))',
  'def errname(f):',
  '    try:',
  '        f(); return "ok"',
  '    except OSError as e:',
  '        return errno.errorcode[e.errno]',
  'KEEP, PUNCH, ZERO = 1, 2, 16',
].join('\n');

const py = (script: string, ...args: string[]) => pythonOut(`${PRELUDE}\n${script}`, ...args);

describe('sparse files through the mount', () => {
  let slave: Slave;
  let mnt: string;

  before(async () => {
    slave = await startSlaveWithTmpfs({ id: 'fallocate' }, '4m');
    mnt = slave.mnt;
  });
  after(async () => {
    await slave?.stop();
  });

  it('allocates, keeps the size, punches and zeroes as a local fallocate does, after the writes before it', async () => {
    // The same calls on a file through the mount and on one the slave's disk holds itself.
    const steps = [
      'fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)',
      'os.write(fd, bytes((i * 7) % 251 for i in range(65536)))', // held by the mount until something needs it
      'falloc(fd, 0, 0, 1 << 20)',
      'r = os.open(sys.argv[1], os.O_RDONLY); os.read(r, 1 << 20); os.close(r)', // the page cache holds it
      'falloc(fd, KEEP | PUNCH, 4096, 8192)',
      'os.pwrite(fd, b"x" * 100, 6000)', // into the hole
      'falloc(fd, KEEP, 2 << 20, 1 << 20)', // blocks past the end, the size kept
      'falloc(fd, ZERO, 20000, 5000)',
      'falloc(fd, 0, (1 << 20) - 10, 100)', // grows the file by 90 bytes
      'os.close(fd)',
      'with open(sys.argv[1], "rb") as f: data = f.read()',
      's = os.stat(sys.argv[1])',
      'print(s.st_size, hashlib.sha256(data).hexdigest(), data[4096:6000].count(0), data[20000:25000].count(0))',
    ].join('\n');
    const [through, local] = [await py(steps, join(mnt, 'f')), await py(steps, join(slave.root, 'ref'))];
    assert.equal(through, local);
    assert.match(through, /^1048666 [0-9a-f]{64} 1904 5000\n$/);
    // The slave's file is the local one, blocks included (the KEEP_SIZE blocks, the hole), give
    // or take ext4's extent blocks (a file in more pieces on the disk needs one of 4 KiB).
    const [there, ref] = [await stat(join(slave.root, 'f')), await stat(join(slave.root, 'ref'))];
    assert.equal(there.size, ref.size);
    assert.ok(Math.abs(there.blocks - ref.blocks) <= 16, `${there.blocks} blocks, ${ref.blocks} locally`);
    assert.ok(there.blocks > 3072, 'the blocks allocated past the end are counted (1 MiB is 2048)');
    assert.equal((await stat(join(mnt, 'f'))).blocks, there.blocks, 'st_blocks through the mount');
  });

  it('answers ENOSPC for more than the slave has room for, and allocates nothing', async () => {
    const out = await py([
      'fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)',
      'print(errname(lambda: falloc(fd, 0, 0, 1 << 43)), errname(lambda: falloc(fd, KEEP, 0, 1 << 43)), os.fstat(fd).st_size)',
      'os.close(fd)',
    ].join('\n'), join(mnt, 'huge'));
    assert.equal(out, 'ENOSPC ENOSPC 0\n');
    const there = await stat(join(slave.root, 'huge'));
    assert.deepEqual([there.size, there.blocks], [0, 0]);
  });

  it('answers what the slave\'s filesystem cannot do with its errno, and serves fallocate after it', async () => {
    // tmpfs allocates and punches, but has no ZERO_RANGE; and it is 4 MiB.
    const out = await py([
      'fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)',
      'os.write(fd, b"y" * 16384)',
      'print(errname(lambda: falloc(fd, ZERO, 0, 4096)), errname(lambda: falloc(fd, KEEP | PUNCH, 0, 4096)), errname(lambda: falloc(fd, 0, 0, 8 << 20)))',
      'os.close(fd)',
      'with open(sys.argv[1], "rb") as f: data = f.read()',
      'print(len(data), data[:4096].count(0), data[4096:].count(b"y"))',
      'fd = os.open(sys.argv[2], os.O_CREAT | os.O_RDWR, 0o644)',
      'print(errname(lambda: falloc(fd, 0, 0, 65536)), os.fstat(fd).st_size)',
      'os.close(fd)',
    ].join('\n'), join(mnt, 'small', 'g'), join(mnt, 'after'));
    // EOPNOTSUPP, which Python names by its other name on Linux (one number).
    assert.equal(out, 'ENOTSUP ok ENOSPC\n16384 4096 12288\nok 65536\n');
  });

  it('finds the slave\'s holes and data (SEEK_HOLE, SEEK_DATA), writes still held included, and cp --sparse keeps them', async () => {
    const seek = [
      'fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)',
      'os.pwrite(fd, b"a" * 4096, 0); os.pwrite(fd, b"b" * 4096, 1 << 20); os.pwrite(fd, b"c" * 4096, 3 << 20)', // no fsync
      'falloc(fd, KEEP | PUNCH, 3 << 20, 4096)', // the last data punched out: a hole up to the end
      'out = [os.lseek(fd, 0, os.SEEK_HOLE), os.lseek(fd, 4096, os.SEEK_DATA), os.lseek(fd, 1 << 20, os.SEEK_HOLE), os.lseek(fd, 0, os.SEEK_DATA)]',
      'out.append(errname(lambda: os.lseek(fd, (1 << 20) + 4096, os.SEEK_DATA)))',
      'out.append(errname(lambda: os.lseek(fd, 4 << 20, os.SEEK_HOLE)))',
      'print(*out, os.fstat(fd).st_size)',
      'os.close(fd)',
    ].join('\n');
    const [through, local] = [await py(seek, join(mnt, 'sparse')), await py(seek, join(slave.root, 'sparse-ref'))];
    assert.equal(through, local);
    assert.equal(through, `4096 ${1 << 20} ${(1 << 20) + 4096} 0 ENXIO ENXIO ${(3 << 20) + 4096}\n`);
    // A sparse copy out of the mount: the same bytes, in the blocks of its data only.
    const out = await mkdtemp(join(tmpdir(), 'splitbrain-sparse-'));
    try {
      await run('cp', ['--sparse=auto', join(mnt, 'sparse'), join(out, 'copy')]);
      const copy = await stat(join(out, 'copy'));
      assert.equal(copy.size, (3 << 20) + 4096);
      assert.ok(copy.blocks <= 64, `${copy.blocks} blocks for 8 KiB of data`);
      assert.equal((await run('cmp', [join(out, 'copy'), join(slave.root, 'sparse')])).code, 0);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
