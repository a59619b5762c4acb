import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameError, decodeStart } from '../../sidecar/shim-frames.js';

/** A START payload as shim/README.md lays it out; `ids` makes it version 2. */
function start(strings: string[], argc: number, ids?: { uid: number; gid: number; groups: number[]; ngroups?: number }): Buffer {
  const head = Buffer.alloc(ids ? 26 : 14);
  head[0] = ids ? 2 : 1;
  head[1] = 1;
  head.writeUInt16BE(24, 2);
  head.writeUInt16BE(80, 4);
  head.writeUInt32BE(argc, 6);
  head.writeUInt32BE(strings.length - 1 - argc, 10);
  const groups = Buffer.alloc(4 * (ids?.groups.length ?? 0));
  if (ids) {
    head.writeUInt32BE(ids.uid, 14);
    head.writeUInt32BE(ids.gid, 18);
    head.writeUInt32BE(ids.ngroups ?? ids.groups.length, 22);
    ids.groups.forEach((g, i) => groups.writeUInt32BE(g, 4 * i));
  }
  return Buffer.concat([head, groups, Buffer.from(strings.map((s) => `${s}\0`).join(''))]);
}

describe('shim START frames', () => {
  it('version 2 says who runs the shim', () => {
    const request = decodeStart(start(['/work', 'id', '-G', 'LANG=C'], 2, { uid: 1000, gid: 1001, groups: [1001, 27, 4294967294] }));
    assert.deepEqual(request.caller, { uid: 1000, gid: 1001, groups: [1001, 27, 4294967294] });
    assert.deepEqual([request.cwd, request.argv, request.env, request.pty, request.rows, request.cols],
      ['/work', ['id', '-G'], ['LANG=C'], true, 24, 80]);
  });
  it('version 1 (an older shim) still decodes, without a caller', () => {
    const request = decodeStart(start(['/', 'uname', '-n'], 2));
    assert.equal(request.caller, undefined);
    assert.deepEqual(request.argv, ['uname', '-n']);
  });
  it('refuses other versions by name, and groups the frame does not hold', () => {
    const v3 = start(['/', 'id'], 1, { uid: 0, gid: 0, groups: [] });
    v3[0] = 3;
    assert.throws(() => decodeStart(v3), /START version 3, this bridge speaks 1 and 2/);
    assert.throws(() => decodeStart(start(['/', 'id'], 1, { uid: 0, gid: 0, groups: [1], ngroups: 1_000_000 })), FrameError);
    assert.throws(() => decodeStart(Buffer.from([2, 0, 0])), /too short/);
  });
});
