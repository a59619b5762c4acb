/**
 * Host paths longer than one system call takes (agent/host-path.ts): fsPath hands them over
 * through a directory's descriptor, so Node's calls act on the whole path as the kernel would on
 * a shorter one; the descriptors are gone after the turn; a symlink's target is never rewritten.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { cPath, fsName, fsPath, isLongPath } from '../../agent/host-path.js';
import { setPathTimes } from '../../agent/backends/linux/file-times.js';
import { PATH_MAX } from '../../protocol/index.js';

const NAME = 'n'.repeat(250);

describe('host paths past PATH_MAX', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'splitbrain-host-path-'));
  // GNU rm walks by descriptors; Node's recursive rm names each file by its whole path.
  after(() => execFileSync('rm', ['-rf', tmp]));

  /** `depth` directories of NAME below `base`, made through fsPath. */
  const chain = (base: string, depth: number) => {
    let path = base;
    for (let i = 0; i < depth; i++) {
      path = `${path}/${NAME}`;
      mkdirSync(fsPath(path));
    }
    return path;
  };

  it('names short paths as they are, long ones through a descriptor', () => {
    assert.equal(fsPath('/a/b'), '/a/b');
    assert.equal(isLongPath('/a/b'), false);
    const deep = join(tmp, 'a') + `/${NAME}`.repeat(20); // not made: the length is what counts
    assert.ok(Buffer.byteLength(deep) >= PATH_MAX);
    assert.equal(isLongPath(deep), true);
    assert.throws(() => lstatSync(deep), { code: 'ENAMETOOLONG' }, 'the kernel refuses it whole');
  });

  it('makes, reads, renames and lists files deeper than PATH_MAX', () => {
    mkdirSync(join(tmp, 'a'));
    const deep = chain(join(tmp, 'a'), 40); // 10,000 bytes: through two descriptors
    assert.ok(Buffer.byteLength(deep) > 2 * PATH_MAX);
    writeFileSync(fsPath(`${deep}/f`), 'deep data');
    assert.equal(readFileSync(fsPath(`${deep}/f`), 'utf8'), 'deep data');
    assert.ok(lstatSync(fsPath(deep)).isDirectory());
    // Between two long paths, each through its own descriptors.
    mkdirSync(join(tmp, 'a2'));
    const other = chain(join(tmp, 'a2'), 30);
    renameSync(fsPath(`${deep}/f`), fsPath(`${other}/g`));
    assert.deepEqual(readdirSync(fsPath(deep)), []);
    assert.deepEqual(readdirSync(fsPath(other)), ['g']);
    // libc's calls take the same form (koffi's utimensat).
    setPathTimes(`${other}/g`, { sec: 1e9, nsec: 0 }, { sec: 1e9, nsec: 5 });
    assert.equal(lstatSync(fsPath(`${other}/g`), { bigint: true }).mtimeNs, 1_000_000_000_000_000_005n);
    assert.equal(cPath(`${other}/g`).at(-1), 0);
  });

  it('gives the errno of the directory on the way that is missing or not one', () => {
    const base = join(tmp, 'b');
    mkdirSync(base);
    const deep = chain(base, 18);
    // Missing in a piece opened as a directory, and in the last piece.
    assert.throws(() => lstatSync(fsPath(`${deep}/missing${`/${NAME}`.repeat(14)}`)), { code: 'ENOENT' });
    assert.throws(() => lstatSync(fsPath(`${deep}/missing`)), { code: 'ENOENT' });
    writeFileSync(fsPath(`${deep}/file`), '');
    assert.throws(() => lstatSync(fsPath(`${deep}/file` + `/${NAME}`.repeat(20))), { code: 'ENOTDIR' });
  });

  it('keeps a symlink target as it is, and closes its descriptors after the turn', async () => {
    const base = join(tmp, 'c');
    mkdirSync(base);
    const deep = chain(base, 20);
    await nextTurn();
    const before = readdirSync('/proc/self/fd').length;
    symlinkSync(fsName('../x'), fsPath(`${deep}/link`));
    assert.equal(readlinkSync(fsPath(`${deep}/link`), 'utf8'), '../x');
    assert.ok(readdirSync('/proc/self/fd').length > before, 'held while the turn lasts');
    await nextTurn();
    assert.equal(readdirSync('/proc/self/fd').length, before);
  });
});
