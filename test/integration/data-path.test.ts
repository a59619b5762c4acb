/**
 * Bulk data through the mount: a 256 MiB file and eight (and sixteen) parallel writers arrive
 * byte-identical, and a slow operation does not hold up others.
 */
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sh, waitFor } from '../helpers/processes.js';
import { startSlave, type Slave } from '../helpers/slave.js';

const sha256 = async (path: string) => (await sh(`sha256sum < '${path}'`)).split(' ')[0];
const MMAP_OPS = new URL('../../../test/fixtures/mmap-ops.py', import.meta.url).pathname;

describe('data path', () => {
  let slave: Slave;
  let source: string;

  before(async () => {
    slave = await startSlave();
    source = join(slave.tmp, 'random-256M');
    await sh(`head -c 268435456 /dev/urandom > '${source}'`);
  });
  after(async () => { await slave?.stop(); });

  it('a 256 MiB file written through the mount has the same sha256 on the slave', async () => {
    await sh(`dd if='${source}' of='${slave.mnt}/big' bs=1M conv=fsync status=none`, { timeoutMs: 300_000 });
    assert.equal((await stat(join(slave.root, 'big'))).size, 268_435_456);
    assert.equal(await sha256(join(slave.root, 'big')), await sha256(source));
  });

  it('reads it back through the mount byte-identical', async () => {
    await sh('sync; echo 3 > /proc/sys/vm/drop_caches');
    assert.equal(await sha256(join(slave.mnt, 'big')), await sha256(source));
  });

  it('eight parallel writers to distinct files', async () => {
    const writers = Array.from({ length: 8 }, (_, i) =>
      sh(`dd if='${source}' of='${slave.mnt}/par-${i}' bs=128k skip=${i * 64} count=128 status=none`, { timeoutMs: 120_000 }));
    await Promise.all(writers);
    for (let i = 0; i < 8; i++) {
      const expected = await sh(`dd if='${source}' bs=128k skip=${i * 64} count=128 status=none | sha256sum`);
      const actual = await sh(`sha256sum < '${slave.root}/par-${i}'`);
      assert.equal(actual, expected, `writer ${i}`);
    }
  });

  it('sixteen writers of 1 MiB blocks at once, more than the binding has write slots for, each file exact', async () => {
    // Issue 22: written data arrives in memory the FUSE binding uses again once a write is
    // answered (eight slots, then a buffer of its own): no write may see another's bytes.
    const writers = Array.from({ length: 16 }, (_, i) =>
      sh(`dd if='${source}' of='${slave.mnt}/slots-${i}' bs=1M skip=${i * 8} count=8 status=none`, { timeoutMs: 120_000 }));
    await Promise.all(writers);
    for (let i = 0; i < 16; i++) {
      const expected = await sh(`dd if='${source}' bs=1M skip=${i * 8} count=8 status=none | sha256sum`);
      assert.equal(await sh(`sha256sum < '${slave.root}/slots-${i}'`), expected, `writer ${i}`);
    }
  });

  it('random-offset writes and reads agree with the slave', async () => {
    const script = `
import os, random
random.seed(7)
p = '${slave.mnt}/random-io'
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
model = bytearray(3 << 20)
size = 0
for i in range(400):
    off = random.randrange(0, len(model) - 70000)
    data = os.urandom(random.randrange(1, 70000))
    os.pwrite(fd, data, off)
    model[off:off + len(data)] = data
    size = max(size, off + len(data))
    if i % 50 == 0:
        o = random.randrange(0, len(model) - 4096)
        assert os.pread(fd, 4096, o) == bytes(model[o:min(o + 4096, size)]), 'read-after-write through the same handle'
os.close(fd)
assert os.stat(p).st_size == size
print(size, bytes(model[:size]) == open('${slave.root}/random-io', 'rb').read())
`;
    const out = await sh(`python3 -c "${script.replace(/"/g, '\\"')}"`);
    assert.match(out, / True\n$/);
  });

  it('small files, which come whole with their open, read back exact around that size, from the start and inside, and as the slave changed them', async () => {
    const sizes = [0, 1, 4095, 65_535, 65_536, 65_537, 200_000];
    for (const size of sizes) await sh(`head -c ${size} '${source}' > '${slave.root}/small-${size}'`);
    const script = [
      'import os, sys, hashlib',
      'for size in map(int, sys.argv[2:]):',
      '    p = os.path.join(sys.argv[1], f"small-{size}")',
      '    with open(p, "rb") as f: whole = f.read()',
      '    fd = os.open(p, os.O_RDONLY)',
      '    inside = os.pread(fd, 5000, min(size, 100))',
      '    os.close(fd)',
      '    print(size, len(whole), hashlib.sha256(whole).hexdigest(), hashlib.sha256(inside).hexdigest())',
    ].join('\n');
    const onMount = await sh(`python3 -c '${script}' '${slave.mnt}' ${sizes.join(' ')}`);
    assert.equal(onMount, await sh(`python3 -c '${script}' '${slave.root}' ${sizes.join(' ')}`));
    // Changed on the slave (the feed tells the mount): the next open brings the new bytes.
    await sh(`printf 'changed' >> '${slave.root}/small-4095'`);
    await waitFor('the mount to see the slave\'s change', async () => (await stat(join(slave.mnt, 'small-4095'))).size === 4102, 5000);
    assert.equal(await sha256(join(slave.mnt, 'small-4095')), await sha256(join(slave.root, 'small-4095')));
  });

  it('a long read does not hold up a stat', async () => {
    await sh(`echo hi > '${slave.root}/other' && sync && echo 3 > /proc/sys/vm/drop_caches`);
    let reading = true;
    const reader = sh(`cat '${slave.mnt}/big' > /dev/null`, { timeoutMs: 120_000 }).finally(() => { reading = false; });
    await new Promise((r) => setTimeout(r, 100));
    // A stat queued behind the read would only finish once the read is done: count the stats
    // that finish while it still runs.
    let duringRead = 0;
    for (let i = 0; reading && i < 200; i++) {
      await sh(`stat -c %s '${slave.mnt}/other' '${slave.mnt}/par-${i % 8}' > /dev/null`);
      if (reading) duringRead++;
    }
    await reader;
    assert.ok(duringRead >= 3, `only ${duringRead} stats finished while 256 MiB were being read`);
  });
});

/**
 * Writes, reads, truncates and mmap'd reads and writes of one file in random order, every read
 * checked (test/fixtures/mmap-ops.py). The kernel writes an mmap'd page back while another page
 * of the file is read in: the read must not bring the bytes from before that write, nor the
 * mount keep them for the reads after (read-ahead.ts). With and without the mount's caches.
 */
for (const mountArgs of [[], ['-o', 'cache=no']]) {
  describe(`random writes, truncates and mmap through the mount${mountArgs.length ? ` (${mountArgs.join(' ')})` : ''}`, () => {
    let slave: Slave;
    before(async () => { slave = await startSlave({ mountArgs }); });
    after(async () => { await slave?.stop(); });

    for (const seed of [1, 2, 3]) {
      it(`seed ${seed}: every read agrees with what was written, and the slave has the same bytes`, async () => {
        const out = await sh(`python3 '${MMAP_OPS}' '${slave.mnt}/mm-${seed}' ${seed} 2000`, { timeoutMs: 120_000 });
        assert.match(out, /^ok \d+\n$/);
        assert.equal(await sha256(join(slave.root, `mm-${seed}`)), await sha256(join(slave.mnt, `mm-${seed}`)));
      });
    }
  });
}
