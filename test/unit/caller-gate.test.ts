import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AttrCache } from '../../mount/attr-cache.js';
import { CallerGate } from '../../mount/caller-gate.js';
import type { Attr } from '../../protocol/index.js';

const dir = (ino: number, mode = 0o755, uid = 0): Attr => ({
  mode: 0o040000 | mode, nlink: 2, uid, gid: 0, size: 4096, blocks: 8, atimeMs: 0, mtimeMs: 0, ctimeMs: 0, ino, rdev: 0,
  blksize: 4096, atimeNsec: 0, mtimeNsec: 0, ctimeNsec: 0,
});
// pid 0: a caller the mount cannot see, with its primary group only (no /proc lookup).
const user = { uid: 1000, gid: 1000, pid: 0 };

/** A chain /a/b/c of directories root owns, searchable by all. */
function chain(): { cache: AttrCache; gate: CallerGate } {
  const cache = new AttrCache({ attrTtlMs: 60_000, entryTtlMs: 60_000, negativeTtlMs: 60_000 });
  cache.set('/', dir(1));
  cache.set('/a', dir(2));
  cache.set('/a/b', dir(3));
  cache.set('/a/b/c', dir(4));
  return { cache, gate: new CallerGate(cache) };
}

describe('caller gate: what the cached modes let another user reach', () => {
  it('judges again once a directory above changes its modes, however often the path was judged before', () => {
    const { cache, gate } = chain();
    assert.equal(gate.cacheAnswers('/a/b/c/f', user), true);
    assert.equal(gate.cacheAnswers('/a/b/c/g', user), true);
    cache.set('/a', dir(2, 0o700)); // closed to others
    assert.equal(gate.cacheAnswers('/a/b/c/f', user), false);
    assert.equal(gate.cacheAnswers('/a/b/x', user), false);
    cache.set('/a', dir(2, 0o700, 1000)); // the user's own
    assert.equal(gate.cacheAnswers('/a/b/c/f', user), true);
    cache.forget('/a/b'); // modes no longer known: the agent decides
    assert.equal(gate.cacheAnswers('/a/b/c/f', user), false);
    assert.equal(gate.cacheAnswers('/a/f', user), true);
    assert.equal(gate.cacheAnswers('/a/b/c/f', { uid: 0, gid: 0, pid: 0 }), true);
  });

  it('keeps its judgement while the modes seen again are the same (a directory whose times changed)', () => {
    const { cache, gate } = chain();
    const before = cache.searchModesVersion;
    cache.set('/a/b', { ...dir(3), mtimeMs: 5, size: 8192 });
    assert.equal(cache.searchModesVersion, before);
    cache.set('/a/b', dir(3, 0o711));
    assert.notEqual(cache.searchModesVersion, before);
    assert.equal(gate.cacheAnswers('/a/b/c/f', user), true); // 0o711: search, no listing
    assert.equal(gate.cacheAnswers('/a/b', user, 4 /* MAY_READ */), false);
  });
});
