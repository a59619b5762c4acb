import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { describe, it } from 'node:test';
import { Encoder } from '@msgpack/msgpack';
import {
  ProtocolError, SlaveError, agentIdFromHostname, attrFromWire, attrToWire, decodeReply,
  decodeEvent, decodeRequest, encodeErrorReply, encodeEvent, encodeReply, encodeRequest, errnoName,
  errnoNumber, errnoOf, MAX_SPAWN_GROUPS,
  isOutputSubjectOf, isValidAgentId, opFromSubject, opSubject, outputSubject,
} from '../../protocol/index.js';

describe('errno', () => {
  it('maps names and numbers both ways, whatever the sign', () => {
    assert.equal(errnoNumber('ENOENT'), constants.errno.ENOENT);
    assert.equal(errnoName(constants.errno.ENOTEMPTY), 'ENOTEMPTY');
    assert.equal(errnoName(-constants.errno.EACCES), 'EACCES'); // Node's negative err.errno
    assert.equal(errnoName(99999), 'EIO');
    assert.equal(errnoNumber('ENOTANERRNO'), constants.errno.EIO);
  });
  it('finds the errno of Node errors and ours, and none elsewhere', () => {
    assert.equal(errnoOf(Object.assign(new Error('x'), { code: 'EEXIST' })), 'EEXIST');
    assert.equal(errnoOf(new SlaveError('ESTALE', 'gone')), 'ESTALE');
    assert.equal(errnoOf(new Error('plain')), undefined);
    assert.equal(errnoOf(Object.assign(new Error('x'), { code: 'ERR_INVALID_ARG_TYPE' })), undefined);
  });
});

describe('codec', () => {
  it('carries file data as the same raw bytes, all 256 values', () => {
    const data = Uint8Array.from({ length: 4096 }, (_, i) => i % 256);
    const decoded = decodeRequest('fs.write', encodeRequest('fs.write', 'c:1', { fh: 7, offset: 2 ** 40, data }));
    assert.equal(decoded.id, 'c:1');
    assert.equal(decoded.args.offset, 2 ** 40);
    assert.deepEqual(Buffer.from(decoded.args.data), Buffer.from(data));
  });
  it('splices large data into requests and replies byte for byte, whatever the key order', () => {
    const data = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) % 256);
    const request = decodeRequest('fs.write', encodeRequest('fs.write', 'c:2', { data, fh: 3, offset: 5 }));
    assert.equal(request.args.fh, 3);
    assert.deepEqual(Buffer.from(request.args.data), Buffer.from(data));
    const reply = decodeReply('fs.read', encodeReply('fs.read', 'boot', { data }));
    assert.ok(reply.ok);
    if (reply.ok) assert.deepEqual(Buffer.from(reply.result.data), Buffer.from(data));
  });
  it('embeds the data without base64 (message barely larger than the data)', () => {
    const data = new Uint8Array(100_000);
    assert.ok(encodeRequest('fs.write', 'c:1', { fh: 1, offset: 0, data }).length < 100_100);
  });
  it('rejects malformed requests with ProtocolError', () => {
    assert.throws(() => decodeRequest('fs.getattr', new Uint8Array([0xc1])), ProtocolError);
    assert.throws(() => decodeRequest('fs.getattr', encodeRequest('fs.read', 'x', { fh: 1, offset: 0, length: 1 })), ProtocolError);
    assert.throws(() => decodeRequest('fs.getattr', new Uint8Array([0xdf, 0xff, 0xff, 0xff, 0xff])), ProtocolError);
  });
  it('refuses hostile nesting and declared lengths before decoding (found by hostile-input.test.ts)', () => {
    const nested = new Uint8Array(1 << 20).fill(0x91); // a million one-element arrays: ~200 MB to decode
    nested[nested.length - 1] = 0xc0;
    assert.throws(() => decodeRequest('fs.getattr', nested), /nest deeper/);
    assert.throws(() => decodeReply('fs.getattr', nested), /nest deeper/); // replies are untrusted too
    assert.throws(() => decodeRequest('fs.getattr', Uint8Array.from([0xdd, 0, 0x0f, 0xff, 0xff])), /declares 1048575 elements/);
    const readdir = encodeReply('fs.readdir', 'boot', { entries: [['a', attrToWire(attrFromWire([]))]], cursor: null });
    assert.ok(decodeReply('fs.readdir', readdir).ok); // the deepest message of ours still decodes
  });
  it('names a few of a malformed request\'s issues, not all: one per element of 65,536 made an error reply over max_payload, never sent (hostile-input seed 4100289559)', () => {
    const procIds = Array.from({ length: 65536 }, (_, i) => (i % 2 === 0 ? -1 : 2 ** 40));
    const error = (() => {
      try {
        decodeRequest('proc.keepalive', encodeRequest('proc.keepalive', 'c:1', { procIds }));
      } catch (err) {
        return err as Error;
      }
      return undefined;
    })();
    assert.ok(error instanceof ProtocolError);
    assert.ok(error.message.length < 1024, `${error.message.length} characters`);
    assert.match(error.message, /procIds\.0: .*; and 65528 more$/);
  });
  it('answers a newer protocol with EPROTONOSUPPORT whatever its request looks like', () => {
    const future = new Encoder().encode({ v: 7, request: ['of', 'a', 'shape', 'we', 'do', 'not', 'know'] });
    assert.throws(() => decodeRequest('fs.getattr', future), (err: unknown) => err instanceof SlaveError && err.errnoName === 'EPROTONOSUPPORT');
  });
  it('keeps an agent\'s error message printable and bounded, and an unknown errno as EIO', () => {
    const reply = decodeReply('fs.getattr', encodeErrorReply('b', 'EBOGUS', `\x1b[2J${'x'.repeat(5000)}`));
    assert.ok(!reply.ok && reply.error.errnoName === 'EIO');
    if (!reply.ok) assert.ok(reply.error.message.startsWith('\\x1b[2Jxxx') && reply.error.message.length < 2100);
  });
  it('returns error replies with their errno and boot id', () => {
    const reply = decodeReply('fs.getattr', encodeErrorReply('boot-1', 'ENOENT', 'no such file'));
    assert.equal(reply.boot, 'boot-1');
    assert.equal(reply.ok, false);
    if (!reply.ok) assert.equal(reply.error.errnoName, 'ENOENT');
  });
  it('validates replies too', () => {
    const attr = attrToWire({ mode: 0o100644, nlink: 1, uid: 0, gid: 0, size: 5, blocks: 8, atimeMs: 1, mtimeMs: 2, ctimeMs: 3, ino: 4, rdev: 0, blksize: 4096, atimeNsec: 1e6, mtimeNsec: 2e6, ctimeNsec: 3e6 });
    const good = decodeReply('fs.getattr', encodeReply('fs.getattr', 'b', { attr }));
    assert.ok(good.ok && attrFromWire(good.result.attr).size === 5);
    assert.throws(() => decodeReply('fs.getattr', encodeReply('fs.readlink', 'b', { target: 'x' })), ProtocolError);
  });
});

describe('proc.spawn identity', () => {
  const spawn = { argv: ['id'], env: {}, cwd: '/', pty: null, output: 'splitbrain._out.a.b', window: 1 };
  it('carries uid, gid and supplementary groups', () => {
    const { args } = decodeRequest('proc.spawn', encodeRequest('proc.spawn', 'c:1', { ...spawn, uid: 1000, gid: 1000, groups: [1000, 27] }));
    assert.deepEqual([args.uid, args.gid, args.groups], [1000, 1000, [1000, 27]]);
  });
  it('refuses (uid_t)-1, which setresuid(2) would read as "unchanged" (the process would stay root)', () => {
    for (const ids of [{ uid: 0xffffffff }, { gid: 0xffffffff }, { groups: [0xffffffff] }]) {
      assert.throws(() => decodeRequest('proc.spawn', encodeRequest('proc.spawn', 'c:2', { ...spawn, ...ids })), ProtocolError);
    }
  });
  it('bounds the groups', () => {
    const groups = (n: number) => Array.from({ length: n }, (_, i) => i);
    assert.equal(decodeRequest('proc.spawn', encodeRequest('proc.spawn', 'c:3', { ...spawn, groups: groups(MAX_SPAWN_GROUPS) })).args.groups?.length, MAX_SPAWN_GROUPS);
    assert.throws(() => decodeRequest('proc.spawn', encodeRequest('proc.spawn', 'c:4', { ...spawn, groups: groups(MAX_SPAWN_GROUPS + 1) })), ProtocolError);
  });
});

describe('process events', () => {
  it('carry output as raw bytes, in order, and the exit', () => {
    const data = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 256));
    const out = decodeEvent(encodeEvent({ procId: 3, seq: 0, stream: 'stdout', data }));
    assert.ok('data' in out && Buffer.from(out.data).equals(data));
    const exit = decodeEvent(encodeEvent({ procId: 3, seq: 1, exit: { code: null, signal: 'SIGTERM' } }));
    assert.deepEqual(exit, { procId: 3, seq: 1, exit: { code: null, signal: 'SIGTERM' } });
  });
  it('reject what is not an event', () => {
    assert.throws(() => decodeEvent(encodeRequest('agent.hello', 'x', {})), ProtocolError);
  });
  it('carry a cut (the agent dropped the output it kept), with its errno and a message without control characters', () => {
    const cut = { procId: 3, seq: 7, cut: { errno: 'ENOBUFS', message: 'output cut off: this master fell behind' } };
    assert.deepEqual(decodeEvent(encodeEvent(cut)), cut);
    assert.throws(() => decodeEvent(encodeEvent({ ...cut, cut: { errno: 'ENOBUFS', message: 'a\u001b[2Jb' } })), ProtocolError);
  });
});

describe('subjects', () => {
  it('namespaces every op under its agent', () => {
    assert.equal(opSubject('lab-7', 'fs.read'), 'splitbrain.lab-7.fs.read');
    assert.equal(opFromSubject('lab-7', 'splitbrain.lab-7.fs.read'), 'fs.read');
    assert.equal(opFromSubject('lab-7', 'splitbrain.lab-8.fs.read'), undefined);
  });
  it('accepts only ids that are one NATS token', () => {
    for (const bad of ['', 'a.b', 'a*', '>', 'a b', '_discover', '_out', '_x', 'x'.repeat(129)]) assert.equal(isValidAgentId(bad), false, bad);
    assert.equal(isValidAgentId('board-7_a'), true);
    assert.equal(agentIdFromHostname('lab-box-7.example.com'), 'lab-box-7_example_com');
    assert.equal(agentIdFromHostname('_x.y'), 'x_y');
  });
  it('keeps each agent\'s process output under its own subjects', () => {
    const subject = outputSubject('lab-7', 'abc_1');
    assert.equal(subject, 'splitbrain._out.lab-7.abc_1');
    assert.equal(isOutputSubjectOf('lab-7', subject), true);
    for (const bad of [subject.replace('lab-7', 'lab-8'), 'splitbrain._out.lab-7', 'splitbrain._out.lab-7.a.b',
      'splitbrain._out.lab-7.>', 'splitbrain.lab-7.fs.read', '_INBOX.x.1']) {
      assert.equal(isOutputSubjectOf('lab-7', bad), false, bad);
    }
  });
});
