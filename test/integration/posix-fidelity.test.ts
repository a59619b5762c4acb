/**
 * Issue 14, point 5, on the agent: file times keep their nanoseconds both ways, and file names
 * are bytes. Requests go straight to a real agent, as the mount sends them.
 */
import assert from 'node:assert/strict';
import { lstatSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decode } from '@msgpack/msgpack';
import { ATTR_FIELDS_V1, PROTOCOL_VERSION, attrFromWire, encodeRequest, opSubject, type TimeSpec } from '../../protocol/index.js';
import { rawClient, type RawClient } from '../helpers/raw-client.js';
import { startBareAgent, type BareAgent } from '../helpers/slave.js';

const AGENT_ID = 'posix';

describe('nanosecond times', () => {
  let slave: BareAgent;
  let raw: RawClient;

  before(async () => {
    slave = await startBareAgent({ id: AGENT_ID, prepare: async (root) => writeFileSync(join(root, 'f'), 'x') });
    raw = await rawClient(slave.nats.url, AGENT_ID);
  });
  after(async () => {
    await raw?.close();
    await slave?.stop();
  });

  const cases: [string, TimeSpec, bigint][] = [
    ['1.002003004 s (utime read back 1.002 before)', { sec: 1, nsec: 2_003_004 }, 1_002_003_004n],
    ['a 2038+ time with every nanosecond digit', { sec: 2_240_611_200, nsec: 999_999_999 }, 2_240_611_200_999_999_999n],
    ['a realistic time whose nanoseconds a double cannot hold', { sec: 1_700_000_000, nsec: 123_456_789 }, 1_700_000_000_123_456_789n],
    ['before 1970', { sec: -2, nsec: 500_000_001 }, -1_499_999_999n],
  ];

  for (const [what, time, ns] of cases) {
    it(`sets and reads back ${what} exactly, by path and by handle`, async () => {
      const attr = attrFromWire((await raw.client.call('fs.utimens', { path: '/f', atime: time, mtime: 'omit' })).attr);
      assert.equal(lstatSync(join(slave.root, 'f'), { bigint: true }).atimeNs, ns);
      const expected = time as { sec: number; nsec: number };
      assert.equal(Math.floor(attr.atimeMs / 1000), expected.sec);
      assert.equal(attr.atimeNsec, expected.nsec);

      const { fh } = await raw.client.call('fs.open', { path: '/f', flags: 0 });
      try {
        const byHandle = attrFromWire((await raw.client.call('fs.futimens', { fh, atime: 'omit', mtime: time })).attr);
        assert.equal(lstatSync(join(slave.root, 'f'), { bigint: true }).mtimeNs, ns);
        assert.equal(byHandle.mtimeNsec, expected.nsec);
        assert.equal(byHandle.atimeNsec, expected.nsec); // omitted: kept
      } finally {
        await raw.client.call('fs.release', { fh });
      }
      const read = attrFromWire((await raw.client.call('fs.getattr', { path: '/f' })).attr);
      assert.deepEqual([read.atimeMs, read.atimeNsec, read.mtimeMs, read.mtimeNsec], [attr.atimeMs, attr.atimeNsec, attr.atimeMs, attr.atimeNsec]);
    });
  }

  it('still takes milliseconds and "now" from older masters', async () => {
    const attr = attrFromWire((await raw.client.call('fs.utimens', { path: '/f', atime: 1234.5, mtime: 'now' })).attr);
    assert.equal(lstatSync(join(slave.root, 'f'), { bigint: true }).atimeNs, 1_234_500_000n);
    assert.ok(Math.abs(attr.mtimeMs - Date.now()) < 5000);
  });

  it('answers a protocol-1 request in protocol 1 (12 attribute fields)', async () => {
    const request = encodeRequest('fs.getattr', 'old:1', { path: '/f' }, undefined, undefined, 1);
    const reply = decode(await raw.bus.request(opSubject(AGENT_ID, 'fs.getattr'), request, 5000)) as { v: number; ok: { attr: number[] } };
    assert.equal(reply.v, PROTOCOL_VERSION); // the agent's own; the forms are the request's
    assert.equal(reply.ok.attr.length, ATTR_FIELDS_V1);
  });
});

describe('file names that are not UTF-8', () => {
  let slave: BareAgent;
  let raw: RawClient;
  const names = () => readdirSync(slave.root, { encoding: 'buffer' }).map((b) => b.toString('hex')).sort();

  before(async () => {
    slave = await startBareAgent({ id: AGENT_ID });
    raw = await rawClient(slave.nats.url, AGENT_ID);
  });
  after(async () => {
    await raw?.close();
    await slave?.stop();
  });

  it("round-trips b'a\\xffb' through create, listdir, stat, rename and unlink", async () => {
    const odd = '/a\udcffb'; // b'/a\xffb' in surrogateescape form
    const { fh, attr } = await raw.client.call('fs.create', { path: odd, flags: 1, mode: 0o644 });
    await raw.client.call('fs.write', { fh, offset: 0, data: Buffer.from('bytes') });
    await raw.client.call('fs.release', { fh });
    assert.deepEqual(names(), ['61ff62']);
    const { entries } = await raw.client.call('fs.readdir', { path: '/' });
    assert.deepEqual(entries.map(([name]) => name), ['a\udcffb']);
    assert.equal(attrFromWire(entries[0]?.[1] as number[]).ino, attrFromWire(attr).ino);
    assert.equal(attrFromWire((await raw.client.call('fs.getattr', { path: odd })).attr).size, 5);
    await raw.client.call('fs.utimens', { path: odd, atime: { sec: 7, nsec: 8 }, mtime: 'omit' });
    assert.equal(lstatSync(Buffer.concat([Buffer.from(`${slave.root}/`), Buffer.of(0x61, 0xff, 0x62)]), { bigint: true }).atimeNs, 7_000_000_008n);

    await raw.client.call('fs.rename', { from: odd, to: '/\udcfe\udcff' });
    assert.deepEqual(names(), ['feff']);
    await raw.client.call('fs.rename', { from: '/\udcfe\udcff', to: '/plain' });
    await raw.client.call('fs.rename', { from: '/plain', to: '/\udce9t\u00e9' }); // b'\xe9t\xc3\xa9': bytes and UTF-8 mixed
    assert.deepEqual(names(), ['e974c3a9']);
    await raw.client.call('fs.unlink', { path: '/\udce9t\u00e9' });
    assert.deepEqual(names(), []);
  });

  it('carries such names in symlink targets and in directories on the way', async () => {
    await raw.client.call('fs.mkdir', { path: '/d\udcff', mode: 0o755 });
    const { fh } = await raw.client.call('fs.create', { path: '/d\udcff/f\udc80', flags: 1, mode: 0o644 });
    await raw.client.call('fs.release', { fh });
    const inside = readdirSync(Buffer.concat([Buffer.from(`${slave.root}/d`), Buffer.of(0xff)]), { encoding: 'buffer' });
    assert.deepEqual(inside.map((b) => b.toString('hex')), ['6680']);
    await raw.client.call('fs.symlink', { target: 'd\udcff/f\udc80', path: '/link\udcfe' });
    assert.equal((await raw.client.call('fs.readlink', { path: '/link\udcfe' })).target, 'd\udcff/f\udc80');
    const { entries } = await raw.client.call('fs.readdir', { path: '/d\udcff' });
    assert.deepEqual(entries.map(([name]) => name), ['f\udc80']);
    await raw.client.call('fs.unlink', { path: '/link\udcfe' });
    await raw.client.call('fs.unlink', { path: '/d\udcff/f\udc80' });
    await raw.client.call('fs.rmdir', { path: '/d\udcff' });
    assert.deepEqual(names(), []);
  });

  it('makes FIFOs and sockets under such names (mknod)', async () => {
    await raw.client.call('fs.mknod', { path: '/fifo\udcff', mode: 0o010644, rdev: 0 });
    await raw.client.call('fs.mknod', { path: '/sock\udcff', mode: 0o140644, rdev: 0 });
    const made = readdirSync(slave.root, { encoding: 'buffer' }).map((b) => b.toString('hex')).sort();
    assert.deepEqual(made, [Buffer.from('fifo').toString('hex') + 'ff', Buffer.from('sock').toString('hex') + 'ff']);
    assert.ok(lstatSync(Buffer.concat([Buffer.from(`${slave.root}/fifo`), Buffer.of(0xff)])).isFIFO());
    for (const path of ['/fifo\udcff', '/sock\udcff']) await raw.client.call('fs.unlink', { path });
  });

  it('lists them to a protocol-1 master as U+FFFD, as before', async () => {
    writeFileSync(Buffer.concat([Buffer.from(`${slave.root}/`), Buffer.of(0xff)]), '');
    const request = encodeRequest('fs.readdir', 'old:2', { path: '/' }, undefined, undefined, 1);
    const reply = decode(await raw.bus.request(opSubject(AGENT_ID, 'fs.readdir'), request, 5000)) as { ok: { entries: [unknown][] } };
    assert.deepEqual(reply.ok.entries.map(([name]) => name), ['\uFFFD']);
  });
});
