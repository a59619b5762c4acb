/**
 * Issue 22: process output events are built in buffers the agent uses again; a buffer comes
 * back only when its event is let go, and only buffers of the pool are taken back.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputBuffers } from '../../agent/proc/output-buffers.js';
import { allocWithHeadroom, decodeEvent, encodeOutputEventInPlace } from '../../protocol/index.js';

describe('output event buffers', () => {
  it('builds an event around its buffer, and gives the same memory out again once it is let go', () => {
    const pool = new OutputBuffers(64 * 1024, 2);
    const buffer = pool.take();
    buffer.fill(7, 0, 1000);
    const event = encodeOutputEventInPlace(3, 0, 'stdout', buffer.subarray(0, 1000));
    assert.equal(event.buffer, buffer.buffer, 'in place: no copy');
    const decoded = decodeEvent(event);
    assert.ok('data' in decoded && decoded.data.length === 1000 && decoded.data[999] === 7);
    assert.notEqual(pool.take().buffer, buffer.buffer, 'not while the event is out');
    pool.give(event);
    assert.equal(pool.take().buffer, buffer.buffer);
  });

  it('ignores memory that is not its own, and keeps at most maxFree', () => {
    const pool = new OutputBuffers(4096, 1);
    pool.give(allocWithHeadroom(4096));
    const [a, b] = [pool.take(), pool.take()];
    pool.give(a);
    pool.give(b);
    const again = pool.take();
    assert.equal(again.buffer, a.buffer);
    assert.notEqual(pool.take().buffer, b.buffer, 'b was over the bound: left to the GC');
  });

  it('pins a buffer only for events that fill a good part of it, and as many as a window needs', () => {
    const pool = new OutputBuffers(1 << 20, 4);
    assert.equal(pool.worthPinning(100), false);
    assert.equal(pool.worthPinning(600 * 1024), true);
    assert.equal(pool.pinsFor(8 << 20), 9);
  });
});
