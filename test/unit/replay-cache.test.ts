/**
 * The agent's duplicate request cache (agent/replay-cache.ts): a retried request gets the first
 * answer, the cache stays within its bounds by forgetting the oldest first, and a request that
 * failed is forgotten so that it can run again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplayCache } from '../../agent/replay-cache.js';

/** A produce function that counts its runs and answers `bytes` bytes tagged with the run number. */
function producer(bytes = 1): { runs: () => number; produce: () => Promise<Uint8Array> } {
  let runs = 0;
  return {
    runs: () => runs,
    produce: () => {
      runs++;
      const reply = new Uint8Array(bytes);
      reply[0] = runs;
      return Promise.resolve(reply);
    },
  };
}

/** Whether `key` is still remembered: a run of it answers without producing. */
async function remembered(cache: ReplayCache, key: string): Promise<boolean> {
  let ran = false;
  await cache.run(key, () => {
    ran = true;
    return Promise.resolve(new Uint8Array(1));
  });
  return !ran;
}

describe('replay cache', () => {
  it('answers a retry with the first reply, also while the first still runs', async () => {
    const cache = new ReplayCache();
    let finish: ((reply: Uint8Array) => void) | undefined;
    let runs = 0;
    const produce = () => {
      runs++;
      return new Promise<Uint8Array>((resolve) => { finish = resolve; });
    };
    const first = cache.run('fs.rename a:1', produce);
    const retry = cache.run('fs.rename a:1', produce);
    finish?.(Uint8Array.of(7));
    assert.deepEqual([...await first], [7]);
    assert.deepEqual([...await retry], [7]);
    assert.deepEqual([...await cache.run('fs.rename a:1', produce)], [7]);
    assert.equal(runs, 1);
  });

  it('forgets the oldest first when full, whatever the number of requests through it', async () => {
    const cache = new ReplayCache(100);
    const { produce } = producer();
    // Many times its size: eviction must keep up (the Map's own order slowed with every deletion).
    for (let i = 0; i < 5_000; i++) await cache.run(`fs.open m:${i}`, produce);
    assert.equal(cache.size, 100);
    assert.equal(await remembered(cache, 'fs.open m:4999'), true);
    assert.equal(await remembered(cache, 'fs.open m:4900'), true);
    // m:4899 went long ago; its run now makes room by forgetting the oldest kept, m:4900.
    assert.equal(await remembered(cache, 'fs.open m:4899'), false);
    assert.equal(await remembered(cache, 'fs.open m:4900'), false);
    assert.equal(cache.size, 100);
  });

  it('stays within its bytes', async () => {
    const cache = new ReplayCache(1_000, 10_000);
    const { produce } = producer(1_000);
    for (let i = 0; i < 50; i++) await cache.run(`fs.create m:${i}`, produce);
    assert.equal(cache.size, 10);
    assert.equal(await remembered(cache, 'fs.create m:49'), true);
    assert.equal(await remembered(cache, 'fs.create m:39'), false);
  });

  it('forgets a request whose run failed, and keeps its next run for as long as any other', async () => {
    const cache = new ReplayCache(3);
    await assert.rejects(cache.run('fs.link m:0', () => Promise.reject(new Error('lost'))), /lost/);
    const { produce, runs } = producer();
    await cache.run('fs.link m:1', produce);
    await cache.run('fs.link m:2', produce);
    await cache.run('fs.link m:0', produce);
    assert.equal(runs(), 3);
    // Full: this one makes room. The oldest kept is m:1; the failed run's earlier place in the
    // order must not take m:0's second run with it.
    await cache.run('fs.link m:3', produce);
    assert.equal(cache.size, 3);
    assert.equal(await remembered(cache, 'fs.link m:0'), true);
    assert.equal(await remembered(cache, 'fs.link m:2'), true);
    assert.equal(await remembered(cache, 'fs.link m:3'), true);
  });

  it('keeps its bookkeeping bounded when runs keep failing', async () => {
    const cache = new ReplayCache(10);
    for (let i = 0; i < 5_000; i++) {
      await assert.rejects(cache.run(`fs.unlink m:${i}`, () => Promise.reject(new Error('lost'))));
    }
    assert.equal(cache.size, 0);
    // It still evicts the oldest first, and its record of the order (read past its privacy: the
    // one thing failures could grow) stays within its bound.
    const { produce } = producer();
    for (let i = 0; i < 20; i++) await cache.run(`fs.unlink n:${i}`, produce);
    assert.equal(cache.size, 10);
    assert.equal(await remembered(cache, 'fs.unlink n:19'), true);
    assert.equal(await remembered(cache, 'fs.unlink n:9'), false);
    assert.ok((cache as unknown as { order: unknown[] }).order.length <= 2 * 10 + 1024 + 1);
  });
});

