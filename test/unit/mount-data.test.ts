import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReadAhead } from '../../mount/read-ahead.js';
import { WriteBehind } from '../../mount/write-behind.js';
import { ChunkPool } from '../../mount/chunk-pool.js';
import { WrittenBudget, WrittenWhole } from '../../mount/whole-files.js';
import { SlaveError, decodeRequest, encodeRequest } from '../../protocol/index.js';

describe('write coalescing', () => {
  it('gathers contiguous writes into chunks and keeps the bytes', async () => {
    const sent: [number, Buffer][] = [];
    const wb = new WriteBehind(async (offset, data) => { sent.push([offset, Buffer.from(data)]); }, 1024, 4);
    for (let i = 0; i < 10; i++) await wb.write(i * 256, Buffer.alloc(256, i), 256);
    await wb.flush();
    assert.deepEqual(sent.map(([o, d]) => [o, d.length]), [[0, 1024], [1024, 1024], [2048, 512]]);
    assert.equal(Buffer.concat(sent.map(([, d]) => d))[2304], 9);
  });
  it('fills every chunk to the brim when writes do not divide it (issue 22: 1 MiB writes come as 960 + 64 KiB)', async () => {
    const sent: [number, Buffer][] = [];
    const wb = new WriteBehind(async (offset, data) => { sent.push([offset, Buffer.from(data)]); }, 1024, 4);
    const source = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251));
    for (let at = 0, i = 0; at < source.length; i++) {
      const length = i % 2 === 0 ? 960 : 64;
      await wb.write(at, source.subarray(at, at + length), length);
      at += length;
    }
    await wb.flush();
    assert.deepEqual(sent.map(([o, d]) => [o, d.length]), [[0, 1024], [1024, 1024], [2048, 1024], [3072, 1024]]);
    assert.deepEqual(Buffer.concat(sent.map(([, d]) => d)), source);
  });
  it('starts a new chunk where a write is not contiguous', async () => {
    const sent: [number, number][] = [];
    const wb = new WriteBehind(async (offset, data) => { sent.push([offset, data.length]); }, 1024, 4);
    await wb.write(0, Buffer.alloc(700), 700);
    await wb.write(5000, Buffer.alloc(700), 700);
    await wb.flush();
    assert.deepEqual(sent, [[0, 700], [5000, 700]]);
  });
  it('copies the caller\'s buffer (FUSE reuses it)', async () => {
    const sent: Buffer[] = [];
    const wb = new WriteBehind(async (_o, data) => { sent.push(Buffer.from(data)); }, 1024, 4);
    const buf = Buffer.from('abcd');
    await wb.write(0, buf, 4);
    buf.fill(0);
    await wb.flush();
    assert.equal(sent[0]?.toString(), 'abcd');
  });
  it('reports a failed send on the next flush, once', async () => {
    const wb = new WriteBehind(async () => { throw new SlaveError('ENOSPC', 'full'); }, 1024, 4);
    await wb.write(0, Buffer.alloc(10), 10);
    await assert.rejects(wb.flush(), (e: unknown) => e instanceof SlaveError && e.errnoName === 'ENOSPC');
    await wb.flush();
  });
  it('sends the data on with the first change after it, and its close then waits without uncorking', async () => {
    const told: string[] = [];
    const cork = { uncork: () => { told.push('uncork'); }, soon: () => { told.push('soon'); } };
    const sent: string[] = [];
    const wb = new WriteBehind(async (offset) => { sent.push(`write ${offset}`); }, 1024, 4, undefined, cork);
    await wb.write(0, Buffer.alloc(300), 300);
    await wb.write(300, Buffer.alloc(300), 300);
    assert.deepEqual(told, [], 'writes alone stay held: more may follow');
    await wb.pipeline(async () => { sent.push('utimens'); });
    await wb.pipeline(async () => { sent.push('chown'); });
    assert.deepEqual(sent, ['write 0', 'utimens', 'chown']);
    assert.deepEqual(told, ['soon'], 'only the change that ends the data sends it on');
    await wb.flush();
    assert.deepEqual(told, ['soon'], 'the data is on its way: close does not send the later changes early');
  });
  it('uncorks at flush when its data was not sent on', async () => {
    const told: string[] = [];
    const cork = { uncork: () => { told.push('uncork'); }, soon: () => { told.push('soon'); } };
    const wb = new WriteBehind(async () => { await new Promise((r) => setImmediate(r)); }, 1024, 4, undefined, cork);
    await wb.write(0, Buffer.alloc(10), 10);
    await wb.flush();
    assert.deepEqual(told, ['uncork']);
  });
  it('never has more than maxInFlight sends outstanding', async () => {
    let inFlight = 0;
    let peak = 0;
    const wb = new WriteBehind(async () => {
      peak = Math.max(peak, ++inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
    }, 100, 2);
    for (let i = 0; i < 20; i++) await wb.write(i * 100, Buffer.alloc(100), 100);
    await wb.flush();
    assert.equal(peak, 2);
  });
});

describe('read-ahead', () => {
  const file = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
  const reader = (requests: [number, number][], size = file.length) => new ReadAhead(async (offset, length) => {
    requests.push([offset, length]);
    return file.subarray(offset, offset + length);
  }, 1000, 2, () => size);

  it('serves sequential reads from chunks fetched ahead', async () => {
    const requests: [number, number][] = [];
    const ra = reader(requests);
    const out = Buffer.alloc(10_000);
    for (let off = 0; off < 10_000; off += 300) {
      const target = Buffer.alloc(300);
      const n = await ra.read(target, off, 300);
      target.copy(out, off, 0, n);
    }
    assert.deepEqual(out, file);
    assert.ok(requests.every(([o, l]) => o % 1000 === 0 && l === 1000), JSON.stringify(requests));
  });
  it('reads a small file with one request no larger than the file (rounded to 64 KiB)', async () => {
    const requests: [number, number][] = [];
    const ra = new ReadAhead(async (offset, length) => {
      requests.push([offset, length]);
      return file.subarray(offset, Math.min(offset + length, 3000));
    }, 1 << 20, 4, () => 3000);
    const target = Buffer.alloc(4096);
    assert.equal(await ra.read(target, 0, 4096), 3000);
    assert.deepEqual(requests, [[0, 65536]]);
  });
  it('never answers short before the end of the file, even past a chunk cut at an old size', async () => {
    let size = 1500;
    const ra = new ReadAhead(async (offset, length) => file.subarray(offset, Math.min(offset + length, size)), 1000, 2, () => size);
    const target = Buffer.alloc(900);
    assert.equal(await ra.read(target, 0, 900), 900);
    size = 5000; // grew behind our back; the kernel learns it and reads on
    assert.equal(await ra.read(target, 900, 900), 900);
    assert.deepEqual(target, file.subarray(900, 1800));
  });
  it('answers a read with views of the chunks it lies in, one or two, no copy (issue 22)', async () => {
    const fetched: Buffer[] = [];
    const ra = new ReadAhead(async (offset, length) => {
      const chunk = Buffer.allocUnsafeSlow(Math.min(length, file.length - offset)); // memory of its own
      file.copy(chunk, 0, offset, offset + chunk.length);
      fetched.push(chunk);
      return chunk;
    }, 1000, 2, () => file.length);
    const inside = await ra.readData(0, 300);
    assert.equal(inside.length, 1);
    assert.deepEqual(inside[0], file.subarray(0, 300));
    assert.equal(inside[0]?.buffer, fetched[0]?.buffer, 'a view of the fetched chunk');
    const across = await ra.readData(900, 300);
    assert.deepEqual(Buffer.concat(across), file.subarray(900, 1200));
    assert.deepEqual(across.map((piece) => piece.buffer), [fetched[0]?.buffer, fetched[1]?.buffer], 'views of both chunks');
    const last = await ra.readData(9900, 300);
    assert.deepEqual(Buffer.concat(last), file.subarray(9900), 'short at the end of the file');
  });
  it('asks a random read longer than a chunk in chunks, and stops at the end of the file', async () => {
    const requests: [number, number][] = [];
    const ra = reader(requests);
    const pieces = await ra.readData(5123, 2500);
    assert.deepEqual(requests, [[5123, 1000], [6123, 1000], [7123, 500]]);
    assert.deepEqual(Buffer.concat(pieces), file.subarray(5123, 7623));
    const tail = await ra.readData(8777, 2000);
    assert.deepEqual(Buffer.concat(tail), file.subarray(8777), 'short: the end of the file');
  });
  it('costs one exact request for a random read', async () => {
    const requests: [number, number][] = [];
    const ra = reader(requests);
    const target = Buffer.alloc(50);
    assert.equal(await ra.read(target, 5123, 50), 50);
    assert.deepEqual(requests, [[5123, 50]]);
    assert.deepEqual(target, file.subarray(5123, 5173));
  });
  it('asks again at end of file, which may have grown', async () => {
    let size = 100;
    const ra = new ReadAhead(async (offset, length) => file.subarray(offset, Math.min(offset + length, size)), 1000, 2, () => size);
    const target = Buffer.alloc(50);
    assert.equal(await ra.read(target, 0, 50), 50);
    assert.equal(await ra.read(target, 50, 50), 50);
    assert.equal(await ra.read(target, 100, 50), 0);
    size = 150;
    assert.equal(await ra.read(target, 100, 50), 50);
  });
  it('keeps nothing a read fetched after the file was written while it waited (an mmap\'d page written back mid-read)', async () => {
    // The slave's file: 1,200 bytes of 'a'. A write through the mount overwrites them with 'b',
    // but reaches the agent only after the read below, begun before it, has fetched again.
    let slave = Buffer.alloc(1200, 'a');
    const gates: (() => void)[] = [];
    let gated = true;
    const ra = new ReadAhead(async (offset, length) => {
      if (gated) await new Promise<void>((resolve) => gates.push(resolve));
      return slave.subarray(offset, Math.min(offset + length, slave.length));
    }, 2000, 1, () => 1200);
    const reading = ra.readData(0, 1300); // the kernel's read of the page past the end too
    ra.invalidate(); // the write, buffered in the mount, not yet on the agent
    gated = false;
    for (const open of gates.splice(0)) open();
    assert.equal(Buffer.concat(await reading).toString(), 'a'.repeat(1200)); // begun before the write
    slave = Buffer.alloc(1200, 'b'); // the write reaches the agent
    assert.equal(Buffer.concat(await ra.readData(0, 1200)).toString(), 'b'.repeat(1200));
  });
});

describe('chunk pool', () => {
  it('builds a write request around a pooled chunk where it lies, and decodes to the same bytes, head after head', () => {
    const pool = new ChunkPool(64 * 1024, 4);
    const chunk = pool.take();
    chunk.fill(7);
    const data = chunk.subarray(0, 40_000);
    const first = encodeRequest('fs.write', 'client:1', { fh: 3, offset: 4096, data });
    assert.equal(first.buffer, chunk.buffer, 'the message is the chunk\'s own memory');
    assert.equal(first.byteOffset + first.length, data.byteOffset + data.length);
    const decoded = decodeRequest('fs.write', first);
    assert.equal(decoded.id, 'client:1');
    assert.deepEqual(Buffer.from(decoded.args.data), data);
    // Sent again with another id and handle boot (a retry after an agent restart): a new head.
    const again = encodeRequest('fs.write', 'client:123456', { fh: 9, offset: 4096, data }, 'boot-2');
    const redecoded = decodeRequest('fs.write', again);
    assert.equal(redecoded.handleBoot, 'boot-2');
    assert.equal(redecoded.args.fh, 9);
    assert.deepEqual(Buffer.from(redecoded.args.data), data);
  });

  it('copies bytes that do not sit at a pooled chunk\'s start', () => {
    const pool = new ChunkPool(64 * 1024, 4);
    const chunk = pool.take();
    const data = chunk.subarray(100, 40_100);
    const message = encodeRequest('fs.write', 'client:1', { fh: 3, offset: 0, data });
    assert.notEqual(message.buffer, chunk.buffer);
    const plain = Buffer.alloc(40_000, 1);
    assert.notEqual(encodeRequest('fs.write', 'client:2', { fh: 3, offset: 0, data: plain }).buffer, plain.buffer);
  });
});

describe('a file written whole (WrittenWhole)', () => {
  it('gives its content while the writes run on from offset 0, within its own bound', () => {
    const budget = new WrittenBudget(1 << 20);
    const run = new WrittenWhole(16, 0, budget);
    run.wrote(0, Buffer.from('0123456789'));
    run.wrote(10, Buffer.from('abcdef'));
    assert.equal(run.content()?.toString(), '0123456789abcdef');
    run.wrote(16, Buffer.from('g')); // past its bound: no whole content any more
    assert.equal(run.content(), undefined);
    const gap = new WrittenWhole(16, 0, budget);
    gap.wrote(1, Buffer.from('x')); // not from the start
    assert.equal(gap.content(), undefined);
  });
  it('holds no more than the budget all runs share, and gives it back when a run ends', () => {
    const budget = new WrittenBudget(10);
    const first = new WrittenWhole(100, 0, budget);
    const second = new WrittenWhole(100, 0, budget);
    first.wrote(0, Buffer.alloc(6));
    assert.equal(budget.left, 4);
    second.wrote(0, Buffer.alloc(5)); // more than is left: this run ends, the other goes on
    assert.equal(second.content(), undefined);
    assert.equal(budget.left, 4);
    first.wrote(6, Buffer.alloc(4));
    assert.equal(first.content()?.length, 10);
    assert.equal(budget.left, 0);
    first.spoil(); // released
    first.spoil(); // twice gives back nothing more
    assert.equal(budget.left, 10);
  });
  it('says when the kernel has every page already: each written whole by one request', () => {
    const budget = new WrittenBudget(1 << 20);
    const pages = new WrittenWhole(1 << 16, 0, budget);
    pages.wrote(0, Buffer.alloc(4096));
    pages.wrote(4096, Buffer.alloc(8192));
    assert.equal(pages.inKernel, true);
    pages.wrote(12288, Buffer.alloc(100)); // a last page written in part
    assert.equal(pages.inKernel, false);
    const records = new WrittenWhole(1 << 16, 0, budget);
    records.wrote(0, Buffer.alloc(10240)); // tar's records: two pages in five are written in two requests
    records.wrote(10240, Buffer.alloc(10240));
    assert.equal(records.inKernel, false);
    const spoilt = new WrittenWhole(1 << 16, 0, budget);
    spoilt.wrote(0, Buffer.alloc(4096));
    spoilt.spoil();
    assert.equal(spoilt.inKernel, false);
  });
});
