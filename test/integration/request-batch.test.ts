/**
 * Requests nobody waits for travel together (transport/request-batch.ts): held ones go as one
 * agent.batch message when a waited one follows, in order, each answered as if sent alone;
 * large ones go alone, after what was held; held ones go once none has joined for a while, or
 * they have been held long enough; an agent without batches gets them one by one.
 */
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SlaveError, opSubject } from '../../protocol/index.js';
import { CORK_MAX_MS, CORK_MS } from '../../transport/request-batch.js';
import { rawClient, type RawClient } from '../helpers/raw-client.js';
import { startBareAgent, type BareAgent } from '../helpers/slave.js';

describe('requests that travel together', () => {
  let slave: BareAgent;
  let raw: RawClient;
  /** Another connection that sees every request message the agent gets: a batch, or one alone. */
  let watcher: RawClient;
  let watching: { stop(): void }[] = [];
  let sent = 0;
  /**
   * The request messages seen so far: after a flush of the sending connection (the server takes
   * one connection's messages in order, so it has routed every request sent before its PING), then
   * of the watcher's (the server queued those requests for it before that PONG). The watcher's
   * flush alone raced the sender: two connections, no order between them.
   */
  const seen = async (): Promise<number> => {
    await raw.bus.flushed();
    await watcher.bus.flushed();
    return sent;
  };
  const batches = async (): Promise<number> =>
    (await raw.client.call('agent.stats', {})).ops.find((o) => o.op === 'agent.batch')?.count ?? 0;

  before(async () => {
    slave = await startBareAgent({ id: 'batching' });
    raw = await rawClient(slave.nats.url, 'batching');
    const hello = await raw.client.hello();
    assert.ok(hello.capabilities.includes('agent.batch'));
    watcher = await rawClient(slave.nats.url, 'batching');
    watching = await Promise.all(['agent.batch', 'fs.mkdir'].map((op) => watcher.bus.subscribe(opSubject('batching', op), () => { sent++; })));
    await watcher.bus.flushed();
  });
  after(async () => {
    for (const sub of watching) sub.stop();
    await watcher?.close();
    await raw?.close();
    await slave?.stop();
  });

  it('sends held requests as one message with the next waited one, applied in order, each answered', async () => {
    const before = await batches();
    const held = [];
    for (let i = 0; i < 40; i++) held.push(raw.client.call('fs.mkdir', { path: `/d${i}`, mode: 0o755 }, { hold: true }));
    // In order: the first makes the directory the second makes a name in; the third fails alone.
    held.push(raw.client.call('fs.mkdir', { path: '/d0/inner', mode: 0o700 }, { hold: true }));
    held.push(raw.client.call('fs.mkdir', { path: '/d0', mode: 0o700 }, { hold: true }).then(() => 'made', (err: unknown) => (err as SlaveError).errnoName));
    const waited = await raw.client.call('fs.getattr', { path: '/d0/inner' });
    assert.equal((waited.attr[0] ?? 0) & 0o777, 0o700);
    const results = await Promise.all(held);
    assert.equal(results.at(-1), 'EEXIST', 'a failure answers its own request only');
    assert.equal(results.length, 42);
    assert.equal((await readdir(slave.root)).filter((n) => n.startsWith('d')).length, 40);
    assert.ok((await stat(join(slave.root, 'd0', 'inner'))).isDirectory());
    // agent.stats itself travels alone: the held ones and the getattr went as one batch.
    assert.equal(await batches() - before, 1);
  });

  it('sends what it held once nothing joined for a while, with nobody waiting', async () => {
    const before = await batches();
    const held = [1, 2, 3].map((i) => raw.client.call('fs.mkdir', { path: `/late${i}`, mode: 0o755 }, { hold: true }));
    await Promise.all(held); // resolves: the cork's timer sent them
    assert.equal(await batches() - before, 1);
  });

  it('sends what it holds at the end of the turn when told to soon, with what joins in that turn', async () => {
    const before = await batches();
    const first = await seen();
    const held = [raw.client.call('fs.mkdir', { path: '/soon1', mode: 0o755 }, { hold: true })];
    raw.client.sendSoon();
    held.push(raw.client.call('fs.mkdir', { path: '/soon2', mode: 0o755 }, { hold: true }));
    await new Promise((resolve) => setImmediate(resolve));
    // Sent in that turn, not by the cork's timer (CORK_MS): the server has it before our flush's PONG.
    assert.equal(await seen() - first, 1);
    await Promise.all(held);
    assert.equal(await batches() - before, 1);
  });

  /** Sleeps about a millisecond (a timer's least), giving the machine's two cores to the agent and the server. */
  const nap = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 1));

  it('keeps requests that keep coming together past CORK_MS', async (t) => {
    // A file's requests come from as many kernel requests: on a busy machine they span more than
    // CORK_MS, and were split into two or three messages when the cork ran from the first. A
    // round counts only where this process kept its pace (a gap of CORK_MS is a pause: sent),
    // over more than CORK_MS in all.
    for (let round = 0; round < 10; round++) {
      const before = await seen();
      const steady: Promise<unknown>[] = [];
      const times: number[] = [];
      for (let i = 0; i < 6; i++) {
        times.push(performance.now());
        steady.push(raw.client.call('fs.mkdir', { path: `/steady${round}-${i}`, mode: 0o755 }, { hold: true }));
        if (i < 5) await nap();
      }
      const gaps = times.slice(1).map((time, i) => time - (times[i] ?? time));
      const kept = Math.max(...gaps) < 0.9 * CORK_MS && (times.at(-1) ?? 0) - (times[0] ?? 0) < 0.9 * CORK_MAX_MS;
      await Promise.all(steady);
      if (!kept) continue;
      assert.equal(await seen() - before, 1, `6 requests over ${((times.at(-1) ?? 0) - (times[0] ?? 0)).toFixed(1)} ms went as one message`);
      return;
    }
    t.skip('this process never kept a pace of less than CORK_MS between requests (slept 1 ms): the machine is too busy to time it');
  });

  it('sends requests that keep coming by CORK_MAX_MS, not only when they stop', async () => {
    const before = await seen();
    const stream: Promise<unknown>[] = [];
    const started = performance.now();
    const lasting = 20 * CORK_MAX_MS;
    let firstAnswered = Infinity;
    for (let i = 0; performance.now() - started < lasting; i++) {
      stream.push(raw.client.call('fs.mkdir', { path: `/stream${i}`, mode: 0o755 }, { hold: true }));
      if (i === 0) void stream[0]?.then(() => { firstAnswered = performance.now() - started; });
      await nap();
    }
    await Promise.all(stream);
    assert.ok(await seen() - before >= 2, 'a stream nobody waits for is not held for ever');
    assert.ok(firstAnswered < lasting, `the first request was answered while the stream went on (after ${firstAnswered.toFixed(1)} ms)`);
  });

  it('sends a large request alone, after the held ones, in order', async () => {
    const { fh } = await raw.client.call('fs.create', { path: '/big', flags: 2, mode: 0o644 }) // O_RDWR;
    const small = raw.client.call('fs.write', { fh, offset: 0, data: Buffer.from('head') }, { hold: true });
    const big = raw.client.call('fs.write', { fh, offset: 2, data: Buffer.alloc(200_000, 0x61) }, { hold: true });
    await Promise.all([small, big]);
    const { data } = await raw.client.call('fs.read', { fh, offset: 0, length: 4 });
    assert.equal(Buffer.from(data).toString(), 'heaa', 'the large write landed after the small one');
    await raw.client.call('fs.release', { fh });
  });
});
