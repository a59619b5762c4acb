/** What the mount keeps of written data until the agent reports it durable. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RetainedWrites } from '../../mount/retained-writes.js';

const bytes = (n: number, fill = 1) => Buffer.alloc(n, fill);

describe('retained writes', () => {
  it('lets go of what the same boot reports durable, and of nothing another boot reports', () => {
    const released: Buffer[] = [];
    const kept = new RetainedWrites(1 << 20, (data) => released.push(data));
    const a = bytes(10);
    const b = bytes(20);
    kept.keep('/f', { offset: 0, data: a, boot: 'one', seq: 1 });
    kept.keep('/f', { offset: 10, data: b, boot: 'one', seq: 2 });
    assert.equal(kept.bytes, 30);
    kept.durable('two', 5);
    assert.equal(kept.bytes, 30);
    kept.durable('one', 1);
    assert.equal(kept.bytes, 20);
    assert.deepEqual(released, [a]);
    assert.equal(kept.lastSeq('/f'), 2);
  });

  it('hands over what another boot kept, oldest first, without releasing it', () => {
    const released: Buffer[] = [];
    const kept = new RetainedWrites(1 << 20, (data) => released.push(data));
    kept.keep('/f', { offset: 0, data: bytes(4), boot: 'one', seq: 7 });
    kept.keep('/g', { offset: 0, data: bytes(4), boot: 'two', seq: 1 });
    const stale = kept.takeStale('two');
    assert.deepEqual([...stale.keys()], ['/f']);
    assert.equal(kept.bytes, 4);
    assert.deepEqual(released, []);
  });

  it('follows renames and unlinks, and cuts what a truncation removed', () => {
    const released: Buffer[] = [];
    const kept = new RetainedWrites(1 << 20, (data) => released.push(data));
    kept.keep('/d/f', { offset: 0, data: bytes(100), boot: 'one', seq: 1 });
    kept.keep('/d/f', { offset: 100, data: bytes(100), boot: 'one', seq: 2 });
    kept.renamed('/d', '/e');
    assert.equal(kept.lastSeq('/d/f'), 0);
    assert.equal(kept.lastSeq('/e/f'), 2);
    kept.truncated('/e/f', 50);
    assert.equal(kept.bytes, 50);
    assert.equal(released.length, 1, 'only the entry wholly past the new size is let go');
    kept.unlinked('/e/f');
    assert.equal(kept.bytes, 0);
    assert.equal(released.length, 2);
  });

  it('keeps no byte of a range punched, zeroed or copied over, and what lies either side of it', () => {
    const released: Buffer[] = [];
    const kept = new RetainedWrites(1 << 20, (data) => released.push(data));
    kept.keep('/f', { offset: 0, data: Buffer.from('aaaaaaaaaa'), boot: 'one', seq: 1 });
    kept.keep('/f', { offset: 10, data: Buffer.from('bbbbbbbbbb'), boot: 'one', seq: 2 });
    kept.keep('/f', { offset: 20, data: Buffer.from('cccccccccc'), boot: 'one', seq: 3 });
    kept.replaced('/f', 5, 10); // the tail of the first, the head of the second
    kept.replaced('/f', 22, 3); // inside the third
    kept.replaced('/f', 100, 5); // past them all
    const stale = kept.takeStale('two').get('/f');
    assert.deepEqual(stale?.entries.map((e) => [e.offset, e.data.toString(), e.seq]), [
      [0, 'aaaaa', 1], [15, 'bbbbb', 2], [20, 'cc', 3], [25, 'ccccc', 3],
    ]);
    assert.equal(released.length, 0, 'each entry keeps a part of its buffer');
    kept.keep('/g', { offset: 0, data: bytes(8), boot: 'one', seq: 4 });
    kept.replaced('/g', 0, 8);
    assert.equal(kept.bytes, 0);
    assert.equal(released.length, 1);
  });

  it('is full at its limit', () => {
    const kept = new RetainedWrites(64);
    kept.keep('/f', { offset: 0, data: bytes(63), boot: 'one', seq: 1 });
    assert.equal(kept.full, false);
    kept.keep('/f', { offset: 63, data: bytes(1), boot: 'one', seq: 2 });
    assert.equal(kept.full, true);
  });
});
