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

  it('is full at its limit', () => {
    const kept = new RetainedWrites(64);
    kept.keep('/f', { offset: 0, data: bytes(63), boot: 'one', seq: 1 });
    assert.equal(kept.full, false);
    kept.keep('/f', { offset: 63, data: bytes(1), boot: 'one', seq: 2 });
    assert.equal(kept.full, true);
  });
});
