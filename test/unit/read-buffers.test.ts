/**
 * Issue 22: the agent's fs.read replies are built in memory it uses again, and a buffer is
 * used again only once the NATS server has answered a flush sent after its reply left: a reply
 * still being written must never see the next read's bytes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { POOLED_MIN, ReadBuffers } from '../../agent/fs/read-buffers.js';
import { encodeReply } from '../../protocol/index.js';

const SIZE = 256 * 1024;

/** A flush the test answers by hand, as the server's PONG would. */
function scriptedFlushes(): { flushed: () => Promise<void>; answer(): void; asked(): number } {
  const waiting: (() => void)[] = [];
  let count = 0;
  return {
    flushed: () => {
      count++;
      return new Promise<void>((resolve) => waiting.push(resolve));
    },
    answer: () => waiting.shift()?.(),
    asked: () => count,
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('read reply buffers', () => {
  it('takes a buffer back only after a flush that followed its reply', async () => {
    const server = scriptedFlushes();
    const pool = new ReadBuffers(SIZE, 4, server.flushed);
    const first = pool.take(SIZE);
    const reply = encodeReply('fs.read', 'boot', { data: first });
    assert.equal(reply.buffer, first.buffer, 'the reply is built around the buffer, not copied');
    pool.sent(reply);
    assert.equal(server.asked(), 1);
    const meanwhile = pool.take(SIZE);
    assert.notEqual(meanwhile.buffer, first.buffer, 'not while the reply may still be on its way');
    server.answer();
    await settle();
    assert.equal(pool.take(SIZE).buffer, first.buffer, 'after the flush');
  });

  it('a reply sent while a flush is on its way waits for the next one', async () => {
    const server = scriptedFlushes();
    const pool = new ReadBuffers(SIZE, 4, server.flushed);
    const a = pool.take(SIZE);
    pool.sent(encodeReply('fs.read', 'boot', { data: a }));
    const b = pool.take(SIZE);
    pool.sent(encodeReply('fs.read', 'boot', { data: b }));
    assert.equal(server.asked(), 1, 'one flush at a time');
    server.answer();
    await settle();
    assert.equal(server.asked(), 2, 'the later reply gets a flush of its own');
    const next = pool.take(SIZE);
    assert.equal(next.buffer, a.buffer);
    assert.notEqual(pool.take(SIZE).buffer, b.buffer, 'b waits for its flush');
    server.answer();
    await settle();
    assert.equal(pool.take(SIZE).buffer, b.buffer);
  });

  it('a lost connection lets the sent buffers go, never used again', async () => {
    let fail: (err: Error) => void = () => undefined;
    const pool = new ReadBuffers(SIZE, 4, () => new Promise<void>((_resolve, reject) => { fail = reject; }));
    const a = pool.take(SIZE);
    pool.sent(encodeReply('fs.read', 'boot', { data: a }));
    fail(new Error('connection lost'));
    await settle();
    for (let i = 0; i < 4; i++) assert.notEqual(pool.take(SIZE).buffer, a.buffer);
  });

  it('gives a failed read\'s buffer back at once, and small reads memory of their own', () => {
    const pool = new ReadBuffers(SIZE, 4, () => Promise.resolve());
    const a = pool.take(SIZE);
    pool.giveBack(a);
    assert.equal(pool.take(SIZE).buffer, a.buffer);
    const small = pool.take(POOLED_MIN - 1);
    pool.giveBack(small);
    assert.notEqual(pool.take(POOLED_MIN - 1).buffer, small.buffer);
  });

  it('keeps at most `max` buffers out, then hands out memory of its own', () => {
    const pool = new ReadBuffers(SIZE, 2, () => Promise.resolve());
    const a = pool.take(SIZE);
    const b = pool.take(SIZE);
    const c = pool.take(SIZE);
    pool.giveBack(c); // not the pool's: ignored
    pool.giveBack(a);
    pool.giveBack(b);
    const again = [pool.take(SIZE).buffer, pool.take(SIZE).buffer];
    assert.ok(again.includes(a.buffer) && again.includes(b.buffer));
    assert.ok(![a.buffer, b.buffer].includes(pool.take(SIZE).buffer));
  });
});
