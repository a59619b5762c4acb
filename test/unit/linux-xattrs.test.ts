/**
 * A slave file's extended attributes (agent/backends/linux/xattrs.ts), on real files in a
 * temporary directory: whether it has any, as the agent tells masters at each create and for each
 * listed entry (`bare`), asked with one llistxattr(2) through libc; and every call on a file whose
 * path is not UTF-8, which the xattr library cannot name.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { nameFromBytes } from '../../protocol/index.js';
import { libc } from '../../agent/backends/linux/libc.js';
import { getxattr, hasAnyXattr, listxattr, removexattr, setxattr } from '../../agent/backends/linux/xattrs.js';

describe('hasAnyXattr', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'sb-xattrs-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('asks libc (koffi loads here)', () => {
    assert.notEqual(libc(), null);
  });

  it('is false for a new file and true once it has an attribute', () => {
    const file = join(dir, 'plain');
    writeFileSync(file, 'x');
    assert.equal(hasAnyXattr(file), false);
    setxattr(file, 'user.origin', Buffer.from('fixture'));
    assert.equal(hasAnyXattr(file), true);
  });

  it('reads a symlink\'s own attributes, not its target\'s', () => {
    const target = join(dir, 'target');
    writeFileSync(target, 'x');
    setxattr(target, 'user.k', Buffer.from('v'));
    const link = join(dir, 'link');
    symlinkSync('target', link);
    assert.equal(hasAnyXattr(target), true);
    assert.equal(hasAnyXattr(link), false);
  });

  it('takes a name whose bytes are not UTF-8', () => {
    const bytes = Buffer.concat([Buffer.from(`${dir}/caf`), Buffer.of(0xe9)]);
    writeFileSync(bytes, 'x');
    const host = nameFromBytes(bytes);
    assert.equal(hasAnyXattr(host), false);
    setxattr(host, 'user.k', Buffer.from('v'));
    assert.equal(hasAnyXattr(host), true);
  });

  it('gets, lists, sets and removes the attributes of a file whose path is not UTF-8', () => {
    const bytes = Buffer.concat([Buffer.from(`${dir}/na`), Buffer.of(0xef, 0x76), Buffer.from('e')]);
    writeFileSync(bytes, 'x');
    const host = nameFromBytes(bytes);
    assert.deepEqual(listxattr(host), []);
    assert.equal(getxattr(host, 'user.a'), null);
    setxattr(host, 'user.a', Buffer.from('one'));
    setxattr(host, 'user.b', Buffer.alloc(3000, 7));
    assert.deepEqual(listxattr(host).sort(), ['user.a', 'user.b']);
    assert.deepEqual(getxattr(host, 'user.a'), Buffer.from('one'));
    assert.deepEqual(getxattr(host, 'user.b'), Buffer.alloc(3000, 7));
    setxattr(host, 'user.empty', Buffer.alloc(0));
    assert.deepEqual(getxattr(host, 'user.empty'), Buffer.alloc(0));
    removexattr(host, 'user.a');
    assert.deepEqual(listxattr(host).sort(), ['user.b', 'user.empty']);
    assert.throws(() => removexattr(host, 'user.a'), { errnoName: 'ENODATA' });
    const gone = nameFromBytes(Buffer.concat([Buffer.from(`${dir}/gone`), Buffer.of(0xff)]));
    assert.throws(() => getxattr(gone, 'user.a'), { errnoName: 'ENOENT' });
    assert.throws(() => setxattr(gone, 'user.a', Buffer.from('x')), { errnoName: 'ENOENT' });
  });

  it('cannot tell for a name that is not there', () => {
    assert.equal(hasAnyXattr(join(dir, 'missing')), undefined);
  });
});
