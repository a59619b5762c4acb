/**
 * Requests nobody waits for travel together (transport/request-batch.ts): held ones go as one
 * agent.batch message when a waited one follows, in order, each answered as if sent alone;
 * large ones go alone, after what was held; an agent without batches gets them one by one.
 */
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SlaveError } from '../../protocol/index.js';
import { rawClient, type RawClient } from '../helpers/raw-client.js';
import { startBareAgent, type BareAgent } from '../helpers/slave.js';

describe('requests that travel together', () => {
  let slave: BareAgent;
  let raw: RawClient;
  const batches = async (): Promise<number> =>
    (await raw.client.call('agent.stats', {})).ops.find((o) => o.op === 'agent.batch')?.count ?? 0;

  before(async () => {
    slave = await startBareAgent({ id: 'batching' });
    raw = await rawClient(slave.nats.url, 'batching');
    const hello = await raw.client.hello();
    assert.ok(hello.capabilities.includes('agent.batch'));
  });
  after(async () => {
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

  it('sends what it held once the reply to what went before comes back, with nobody waiting', async () => {
    const before = await batches();
    const held = [1, 2, 3].map((i) => raw.client.call('fs.mkdir', { path: `/late${i}`, mode: 0o755 }, { hold: true }));
    await Promise.all(held); // resolves: the cork's timer sent them
    assert.equal(await batches() - before, 1);
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
