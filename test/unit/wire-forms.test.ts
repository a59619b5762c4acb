/** Nanosecond times and byte names on the wire, in protocol 2 and as protocol-1 peers see them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decode } from '@msgpack/msgpack';
import {
  ATTR_FIELDS, ATTR_FIELDS_V1, ProtocolError, SlaveError, attrFromWire, attrToWire, decodeReply, decodeRequest,
  encodeReply, encodeRequest, msOfTimestamp, timestampFromMs, timestampFromNs, type Attr,
} from '../../protocol/index.js';

const attr: Attr = {
  mode: 0o100644, nlink: 1, uid: 0, gid: 0, size: 5, blocks: 8, ino: 4, rdev: 0, blksize: 4096,
  atimeMs: 1002, atimeNsec: 2_003_004, mtimeMs: 2_240_611_200_999, mtimeNsec: 999_999_999, ctimeMs: -1000, ctimeNsec: 5,
};

describe('file times', () => {
  it('splits nanoseconds since the epoch into seconds and nanoseconds, before 1970 too', () => {
    assert.deepEqual(timestampFromNs(1_002_003_004n), { sec: 1, nsec: 2_003_004 });
    assert.deepEqual(timestampFromNs(1_700_000_000_123_456_789n), { sec: 1_700_000_000, nsec: 123_456_789 });
    assert.deepEqual(timestampFromNs(-1n), { sec: -1, nsec: 999_999_999 });
    assert.deepEqual(timestampFromNs(-1_000_000_000n), { sec: -1, nsec: 0 });
  });
  it('gives integer milliseconds whose floor division is the exact second', () => {
    assert.equal(msOfTimestamp({ sec: -1, nsec: 999_999_999 }), -1);
    assert.equal(Math.floor(msOfTimestamp({ sec: -2, nsec: 500_000_000 }) / 1000), -2);
    assert.equal(msOfTimestamp({ sec: 1, nsec: 2_003_004 }), 1002);
    assert.deepEqual(timestampFromMs(1002.003), { sec: 1, nsec: 2_003_000 });
    assert.deepEqual(timestampFromMs(-0.5), { sec: -1, nsec: 999_500_000 });
  });
});

describe('attributes on the wire', () => {
  it('round-trip with their nanoseconds', () => {
    const reply = decodeReply('fs.getattr', encodeReply('fs.getattr', 'b', { attr: attrToWire(attr) }));
    assert.ok(reply.ok);
    if (reply.ok) assert.deepEqual(attrFromWire(reply.result.attr), attr);
  });
  it('from an older agent (12 fields, float milliseconds) get their nanoseconds derived', () => {
    const old = attrToWire(attr).slice(0, ATTR_FIELDS_V1);
    old[6] = 1002.003; // atimeMs as protocol 1 sent it
    const reply = decodeReply('fs.getattr', encodeReply('fs.getattr', 'b', { attr: old }));
    assert.ok(reply.ok);
    if (!reply.ok) return;
    const read = attrFromWire(reply.result.attr);
    assert.equal(read.atimeMs, 1002);
    assert.equal(read.atimeNsec, 2_003_000);
    assert.equal(read.ctimeMs, -1000);
    assert.equal(read.ctimeNsec, 0);
  });
  it('go to an older master as the 12 fields it takes', () => {
    const message = decode(encodeReply('fs.getattr', 'b', { attr: attrToWire(attr) }, 1)) as { v: number; ok: { attr: number[] } };
    assert.equal(message.ok.attr.length, ATTR_FIELDS_V1);
    const listing = decode(encodeReply('fs.readdir', 'b', { entries: [['a', attrToWire(attr)]], cursor: null }, 1)) as { ok: { entries: [string, number[]][] } };
    assert.equal(listing.ok.entries[0]?.[1].length, ATTR_FIELDS_V1);
  });
  it('refuse nanoseconds out of range', () => {
    const wire = attrToWire(attr);
    wire[ATTR_FIELDS.length - 1] = 1e9;
    assert.throws(() => decodeReply('fs.getattr', encodeReply('fs.getattr', 'b', { attr: wire })), ProtocolError);
  });
});

describe('times in requests', () => {
  it('carry seconds and nanoseconds exactly, and milliseconds, now and omit as before', () => {
    const times = [{ sec: 2_240_611_200, nsec: 999_999_999 }, { sec: -5, nsec: 1 }, 1234.5, 'now', 'omit'] as const;
    for (const atime of times) {
      const { args } = decodeRequest('fs.utimens', encodeRequest('fs.utimens', 'c:1', { path: '/f', atime, mtime: 'omit' }));
      assert.deepEqual(args.atime, atime);
    }
    for (const bad of [{ sec: 1, nsec: 1e9 }, { sec: 1, nsec: -1 }, { sec: 1.5, nsec: 0 }]) {
      assert.throws(() => decodeRequest('fs.utimens', encodeRequest('fs.utimens', 'c:1', { path: '/f', atime: bad, mtime: 'now' })), ProtocolError);
    }
  });
  it('go to an older agent as milliseconds', () => {
    const message = decode(encodeRequest('fs.futimens', 'c:1', { fh: 1, atime: { sec: 1, nsec: 2_003_004 }, mtime: 'now' }, undefined, undefined, 1)) as { v: number; a: { atime: number } };
    assert.equal(message.v, 1);
    assert.equal(message.a.atime, 1002.003004);
  });
});

describe('names on the wire', () => {
  const odd = 'a\udcffb'; // b'a\xffb'
  it('travel as bin when they are not UTF-8 and come back as the same string', () => {
    const message = decode(encodeRequest('fs.rename', 'c:1', { from: `/${odd}`, to: '/plain' })) as { a: { from: unknown; to: unknown } };
    assert.deepEqual(message.a.from, Uint8Array.from([0x2f, 0x61, 0xff, 0x62]));
    assert.equal(message.a.to, '/plain');
    const { args } = decodeRequest('fs.rename', encodeRequest('fs.rename', 'c:1', { from: `/${odd}`, to: '/plain' }));
    assert.equal(args.from, `/${odd}`);
    const link = decodeReply('fs.readlink', encodeReply('fs.readlink', 'b', { target: `../${odd}` }));
    assert.ok(link.ok && link.result.target === `../${odd}`);
    const listing = { entries: [[odd, null], ['plain', attrToWire(attr)]] as [string, number[] | null][], cursor: null };
    const reply = decodeReply('fs.readdir', encodeReply('fs.readdir', 'b', listing));
    assert.ok(reply.ok);
    if (reply.ok) assert.deepEqual(reply.result, listing);
  });
  it('still refuse NUL, as bytes too', () => {
    assert.throws(() => decodeRequest('fs.unlink', encodeRequest('fs.unlink', 'c:1', { path: '/a\0\udcff' })), ProtocolError);
  });
  it('reach an older master as U+FFFD, and are not sent to an older agent (EILSEQ)', () => {
    const listing = decode(encodeReply('fs.readdir', 'b', { entries: [[odd, null]], cursor: null }, 1)) as { ok: { entries: [string][] } };
    assert.equal(listing.ok.entries[0]?.[0], 'a\uFFFDb');
    assert.throws(() => encodeRequest('fs.unlink', 'c:1', { path: `/${odd}` }, undefined, undefined, 1),
      (err: unknown) => err instanceof SlaveError && err.errnoName === 'EILSEQ');
  });
});
