/**
 * Ids between the mount's user namespace and the master's (mount/id-maps.ts): nothing changes in
 * the initial namespace; in `splitbrain shell`'s without root, the namespace's root is the caller.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IdMap, OVERFLOW_ID } from '../../mount/id-maps.js';

describe('id maps', () => {
  it('are the identity in the initial user namespace', () => {
    const map = IdMap.parse('         0          0 4294967295\n');
    assert.equal(map.identity, true);
    assert.equal(map.toMaster(1000), 1000);
    assert.equal(map.fromMaster(0), 0);
  });

  it('turn the namespace\'s root into the caller and back; unmapped ids are the overflow id', () => {
    const map = IdMap.parse('0 1000 1\n');
    assert.equal(map.identity, false);
    assert.equal(map.toMaster(0), 1000);
    assert.equal(map.toMaster(5), undefined);
    assert.equal(map.fromMaster(1000), 0);
    assert.equal(map.fromMaster(0), OVERFLOW_ID, 'the slave\'s root is nobody here');
  });

  it('follow ranges', () => {
    const map = IdMap.parse('0 100000 65536\n65536 1000 1\n');
    assert.equal(map.toMaster(10), 100010);
    assert.equal(map.toMaster(65536), 1000);
    assert.equal(map.fromMaster(100010), 10);
    assert.equal(map.fromMaster(1000), 65536);
    assert.equal(map.fromMaster(99999), OVERFLOW_ID);
  });
});
