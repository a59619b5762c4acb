/** Linux's discretionary access rules as protocol/caller.ts writes them (no I/O). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAY_EXEC, MAY_READ, MAY_WRITE, ROOT_CALLER, chmodMode, decodeRequest, encodeRequest, mayChown, mayRemoveFrom,
  newOwner, openAccess, permits, permitsWithAcl, type Caller,
} from '../../protocol/index.js';

const alice: Caller = { uid: 1000, gid: 1000, groups: [2000] };
const file = (mode: number, uid = 0, gid = 0) => ({ mode: 0o100000 | mode, uid, gid });
const dir = (mode: number, uid = 0, gid = 0) => ({ mode: 0o040000 | mode, uid, gid });

describe('caller rules', () => {
  it('applies one class of bits: owner, else group, else other', () => {
    assert.equal(permits(alice, file(0o604, 1000), MAY_READ), true);
    assert.equal(permits(alice, file(0o064, 1000), MAY_READ), false, 'the owner class decides even when others may');
    assert.equal(permits(alice, file(0o040, 0, 2000), MAY_READ), true, 'a supplementary group counts');
    assert.equal(permits(alice, file(0o604, 0, 2000), MAY_READ), false);
    assert.equal(permits(alice, file(0o666), MAY_READ | MAY_WRITE), true);
    assert.equal(permits(alice, file(0o664), MAY_WRITE), false);
  });

  it('lets root read and write anything, and execute what anyone may', () => {
    assert.equal(permits(ROOT_CALLER, file(0o000, 1000), MAY_READ | MAY_WRITE), true);
    assert.equal(permits(ROOT_CALLER, file(0o644), MAY_EXEC), false);
    assert.equal(permits(ROOT_CALLER, file(0o001), MAY_EXEC), true);
    assert.equal(permits(ROOT_CALLER, dir(0o000), MAY_EXEC), true);
  });

  it('keeps sticky directories\' entries to their owners', () => {
    assert.equal(mayRemoveFrom(alice, dir(0o1777), file(0o644, 1001)), false);
    assert.equal(mayRemoveFrom(alice, dir(0o1777), file(0o644, 1000)), true);
    assert.equal(mayRemoveFrom(alice, dir(0o1777, 1000), file(0o644, 1001)), true);
    assert.equal(mayRemoveFrom(alice, dir(0o777), file(0o644, 1001)), true);
  });

  it('follows chown_ok and chgrp_ok', () => {
    const own = file(0o644, 1000, 1000);
    assert.equal(mayChown(alice, own, 1001, -1), false);
    assert.equal(mayChown(alice, own, 1000, 2000), true);
    assert.equal(mayChown(alice, own, -1, 3000), false);
    assert.equal(mayChown(alice, file(0o644, 1001, 1000), -1, 1000), false, 'not the owner');
    assert.equal(mayChown(alice, file(0o644, 1001), -1, -1), true);
    assert.equal(mayChown(ROOT_CALLER, own, 5, 5), true);
  });

  it('drops set-group-ID from a chmod outside the group, and gives new objects the right group', () => {
    assert.equal(chmodMode(alice, file(0o644, 1000, 3000), 0o2755), 0o755);
    assert.equal(chmodMode(alice, file(0o644, 1000, 2000), 0o2755), 0o2755);
    assert.deepEqual(newOwner(alice, dir(0o2775, 0, 50)), { uid: 1000, gid: 50 });
    assert.deepEqual(newOwner(alice, dir(0o775, 0, 50)), { uid: 1000, gid: 1000 });
  });

  it('asks open(2)\'s access of its flags', () => {
    assert.equal(openAccess(0), MAY_READ);
    assert.equal(openAccess(1), MAY_WRITE);
    assert.equal(openAccess(2), MAY_READ | MAY_WRITE);
    assert.equal(openAccess(0o1000), MAY_READ | MAY_WRITE); // O_TRUNC
    assert.equal(openAccess(0o40), MAY_READ | MAY_EXEC); // execve's open
  });

  it('follows a POSIX ACL: a named user under the mask, named groups, other only when no group matched', () => {
    const acl = (...entries: [number, number, number][]) => {
      const out = Buffer.alloc(4 + 8 * entries.length);
      out.writeUInt32LE(2, 0);
      entries.forEach(([tag, perm, id], i) => {
        out.writeUInt16LE(tag, 4 + i * 8);
        out.writeUInt16LE(perm, 6 + i * 8);
        out.writeUInt32LE(id, 8 + i * 8);
      });
      return out;
    };
    const none = 0xffffffff;
    const named = acl([0x01, 6, none], [0x02, 6, 1000], [0x04, 0, none], [0x08, 4, 2000], [0x10, 4, none], [0x20, 0, none]);
    const inode = file(0o640, 0, 0); // group class 4: the mask
    assert.equal(permitsWithAcl(alice, inode, named, MAY_READ), true, 'named user, under the mask');
    assert.equal(permitsWithAcl(alice, inode, named, MAY_WRITE), false, 'the mask takes write away');
    const bob: Caller = { uid: 1001, gid: 1001, groups: [2000] };
    assert.equal(permitsWithAcl(bob, inode, named, MAY_READ), true, 'a named group');
    const carol: Caller = { uid: 1002, gid: 0, groups: [] };
    assert.equal(permitsWithAcl(carol, inode, named, MAY_READ), false, 'in the owning group, which grants nothing: not other');
    const dave: Caller = { uid: 1003, gid: 1003, groups: [] };
    assert.equal(permitsWithAcl(dave, file(0o644), acl([0x01, 6, none], [0x04, 4, none], [0x20, 4, none]), MAY_READ), true);
    assert.equal(permitsWithAcl(alice, inode, null, MAY_READ), false, 'no ACL: the mode bits');
    assert.equal(permitsWithAcl(alice, file(0o600), named, MAY_READ), false, 'an empty group class skips the ACL');
  });

  it('carries the caller in the request envelope', () => {
    const decoded = decodeRequest('fs.getattr', encodeRequest('fs.getattr', 'c:1', { path: '/x' }, undefined, alice));
    assert.deepEqual(decoded.caller, alice);
    assert.equal(decodeRequest('fs.getattr', encodeRequest('fs.getattr', 'c:2', { path: '/x' })).caller, undefined);
  });
});
