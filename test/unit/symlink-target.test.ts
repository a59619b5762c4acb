import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SlaveError, shownSymlinkTarget, storedSymlinkTarget, translatedSymlinkTarget } from '../../protocol/index.js';
import { SeededRandom } from '../helpers/seeded-random.js';

/** [link path, stored target, shown target] */
type Case = [string, string, string];

function check(cases: Case[]): void {
  for (const [linkPath, target, shown] of cases) {
    assert.equal(shownSymlinkTarget(linkPath, target), shown, `${linkPath} -> ${target}`);
  }
}

describe('the symlink target a mount shows', () => {
  it('makes absolute targets relative to the link\'s directory', () => {
    check([
      ['/etc/x', '/etc/shadow', 'shadow'],
      ['/a/b/l', '/etc/hosts', '../../etc/hosts'],
      ['/etc/localtime', '/usr/share/zoneinfo/UTC', '../usr/share/zoneinfo/UTC'],
      ['/a/b/l', '/a/c', '../c'],
      ['/a/b/l', '/a/b/c/d', 'c/d'],
      ['/a/b/l', '/a', '..'],
      ['/a/b/l', '/a/b', '.'],
      ['/a/b/l', '//etc//hosts', '../../etc/hosts'],
      ['/a/b/l', '/./etc/./hosts', '../../etc/hosts'],
    ]);
  });

  it('shows a link to / as the way up to the mount\'s root', () => {
    check([
      ['/a/b/l', '/', '../..'],
      ['/a/l', '/', '..'],
      ['/l', '/', '.'],
      ['/l', '//', '.'],
      ['/l', '/..', '.'],
    ]);
  });

  it('handles links at the root', () => {
    check([
      ['/x', '/etc/hosts', 'etc/hosts'],
      ['/x', 'etc/hosts', 'etc/hosts'],
      ['/x', '..', '.'],
      ['/x', '../etc', 'etc'],
      ['/x', '../../../tmp/victim', 'tmp/victim'],
      ['/x', '.', '.'],
    ]);
  });

  it('keeps a target that names a directory by its end naming one', () => {
    check([
      ['/x', '/etc/', 'etc/'],
      ['/a/x', '/etc/', '../etc/'],
      ['/a/x', '/etc//', '../etc/'],
      ['/a/x', '/etc/.', '../etc/'],
      ['/a/x', '/etc/ssl/..', '../etc/'],
      ['/a/b/x', '/a/', '..'],
      ['/a/b/x', '/a/b/', '.'],
      ['/x', '../etc/', 'etc/'],
      ['/a/x', '../../', '..'],
      ['/a/x', 'd/../e/', 'e/'],
    ]);
  });

  it('returns relative targets that stay inside byte for byte', () => {
    for (const [linkPath, target] of [
      ['/usr/bin/l', '../../lib/x'],
      ['/usr/bin/l', '../lib/x'],
      ['/a/l', '..'],
      ['/a/b/l', '../..'],
      ['/a/b/l', '../../'],
      ['/a/l', '.'],
      ['/a/l', './'],
      ['/a/l', './foo'],
      ['/a/l', 'foo//bar/'],
      ['/a/l', 'foo/./bar'],
      ['/a/l', './../x'],
      ['/a/l', '.././/x'],
      ['/a/l', 'zod/package.json'],
      ['/a/l', 'ünïcödé/名前'],
      ['/a/l', '...'],
      ['/a/l', '..x/y'],
      ['/l', 'sub'],
      ['/l', ''],
    ]) {
      assert.equal(shownSymlinkTarget(linkPath as string, target as string), target, `${linkPath} -> ${target}`);
    }
  });

  it('clamps relative targets climbing above the root as the slave\'s kernel does', () => {
    check([
      ['/etc/x', '../../../../../tmp/victim', '../tmp/victim'],
      ['/a/l', '../../a/b', 'b'],
      ['/a/b/l', '../../../a/b/c', 'c'],
      ['/a/b/l', '../../../', '../..'],
      ['/a/b/l', '../../../..', '../..'],
      ['/a/b/l', '../.././../x', '../../x'],
    ]);
  });

  it('resolves a ".." after a name lexically, since that name may be a link to the root', () => {
    check([
      // Kept, `root -> /` (shown `..`) then `..` would take the master's kernel above the mount.
      ['/a/l', 'root/../victim', 'victim'],
      ['/a/l', 's/../x', 'x'],
      ['/p/q/l', 'a/../../x', '../x'],
      ['/p/q/l', 'a/b/../../../../../x', '../../x'],
      ['/etc/x', '/etc/s/../shadow', 'shadow'],
      ['/a/l', '../a/b/../c', 'c'],
    ]);
  });

  it('takes the link\'s own path lexically (a device path as a master sent it)', () => {
    check([
      ['/pts/../ttyBOARD', '/pts/7', 'pts/7'],
      ['//serial/./by-id//usb', '/ttyUSB0', '../../ttyUSB0'],
      ['/../../x', '../y', 'y'],
    ]);
  });

  it('refuses to show a target the kernel would cut short (ENAMETOOLONG), rather than cut it', () => {
    const deep = `/${'d/'.repeat(1500)}l`;
    assert.throws(() => shownSymlinkTarget(deep, '/x'), (err: unknown) => err instanceof SlaveError && err.errnoName === 'ENAMETOOLONG');
    const fits = `/${'d/'.repeat(1300)}l`; // 1300 steps up: 3903 bytes
    assert.equal(shownSymlinkTarget(fits, '/..x'), `${'../'.repeat(1300)}..x`);
    // Unchanged targets are never refused: the slave stored them.
    const long = `${'n/'.repeat(2000)}x`;
    assert.equal(shownSymlinkTarget(deep, long), long);
  });

  it('never shows a way out of the mount, and leads where the slave\'s kernel leads (seeded)', () => {
    const seed = SeededRandom.seedFromEnv();
    const r = new SeededRandom(seed);
    const names = ['a', 'b', 'c', '..x', '...', 'ü'];
    const parts = [...names, '..', '..', '.', ''];
    for (let n = 0; n < 20_000; n++) {
      const linkDir = Array.from({ length: r.int(5) }, () => r.pick(names));
      const linkPath = `/${[...linkDir, 'l'].join('/')}`;
      const target = (r.chance(0.4) ? '/' : '') + Array.from({ length: r.int(7) }, () => r.pick(parts)).join('/');
      const context = `seed ${seed}: ${linkPath} -> ${target}`;
      let shown: string;
      try {
        shown = shownSymlinkTarget(linkPath, target);
      } catch (err) {
        assert.fail(`${context}: ${String(err)}`);
      }
      if (target === '') {
        assert.equal(shown, '', context);
        continue;
      }
      assert.ok(!shown.startsWith('/'), `${context}: shown ${shown} is absolute`);
      // Every `..` first, no more of them than the link's depth: the master's kernel, walking
      // from the link's directory, never goes above the mount's root.
      const steps = shown.split('/').filter((p) => p !== '' && p !== '.');
      const ups = steps.findIndex((p) => p !== '..');
      const leading = ups === -1 ? steps.length : ups;
      assert.ok(leading <= linkDir.length, `${context}: shown ${shown} climbs ${leading} from depth ${linkDir.length}`);
      assert.ok(!steps.slice(leading).includes('..'), `${context}: shown ${shown} has '..' after a name`);
      // Lexically (no links on the way) it leads where the slave's kernel leads from the link.
      assert.deepEqual(walk(linkDir, shown), walk(target.startsWith('/') ? [] : linkDir, target), `${context}: shown ${shown}`);
      // A target that must be a directory still must.
      const last = target.split('/').at(-1);
      if (last === '' || last === '.' || last === '..') {
        assert.ok(shown === '.' || shown.endsWith('/') || shown.endsWith('..') || shown.endsWith('/.'), `${context}: shown ${shown} lost its directory end`);
      }
    }
  });
});

/** A path walked lexically from `from`, `..` stopping at the root: the slave's view, without links. */
function walk(from: string[], path: string): string[] {
  const at = [...from];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') at.pop();
    else at.push(part);
  }
  return at;
}

describe('absolute targets translated by the mount\'s path (issue 21)', () => {
  const MNT = '/home/me/mnt';
  it('shows an absolute target under the mount\'s path, byte for byte', () => {
    for (const [linkPath, target, shown] of [
      ['/opt/fw/current', '/opt/fw/v2', `${MNT}/opt/fw/v2`],
      ['/etc/x', '/etc/shadow', `${MNT}/etc/shadow`],
      ['/a/l', '/', MNT],
      ['/a/l', '//etc//hosts', `${MNT}//etc//hosts`],
      ['/a/l', '/etc/./hosts/', `${MNT}/etc/./hosts/`],
      ['/a/l', '/ünï/名前', `${MNT}/ünï/名前`],
    ]) {
      assert.equal(translatedSymlinkTarget(MNT, linkPath as string, target as string), shown, `${linkPath} -> ${target}`);
    }
  });

  it('resolves the `..` of an absolute target at the root, as the slave does, unless the mount followed it', () => {
    assert.equal(translatedSymlinkTarget(MNT, '/l', '/../../etc/x'), `${MNT}/etc/x`);
    assert.equal(translatedSymlinkTarget(MNT, '/l', '/a/s/../x'), `${MNT}/a/x`);
    assert.equal(translatedSymlinkTarget(MNT, '/l', '/a/s/../x', true), `${MNT}/a/s/../x`);
    assert.equal(translatedSymlinkTarget(MNT, '/l', '/etc/ssl/..'), `${MNT}/etc/`);
    assert.equal(translatedSymlinkTarget(MNT, '/l', '/..'), MNT);
  });

  it('shows relative targets as the relative mode does', () => {
    assert.equal(translatedSymlinkTarget(MNT, '/a/b/l', '../../x'), '../../x');
    assert.equal(translatedSymlinkTarget(MNT, '/a/l', '../../../x'), '../x');
    assert.equal(translatedSymlinkTarget(MNT, '/a/l', 'current/..'), '.');
    assert.equal(translatedSymlinkTarget(MNT, '/a/l', 'current/..', true), 'current/..');
  });

  it('with the mount at the slave\'s own paths (seen at /), shows absolute targets as stored', () => {
    assert.equal(translatedSymlinkTarget('/', '/a/l', '/etc/hosts'), '/etc/hosts');
    assert.equal(translatedSymlinkTarget('/', '/a/l', '/../etc'), '/etc');
    assert.equal(storedSymlinkTarget('/', '/etc/hosts'), '/etc/hosts');
  });

  it('refuses a target the kernel would cut short', () => {
    const long = `/${'d/'.repeat(2050)}x`;
    assert.throws(() => translatedSymlinkTarget(MNT, '/l', long), (err: unknown) => err instanceof SlaveError && err.errnoName === 'ENAMETOOLONG');
  });

  it('stores a link to the mount\'s own paths from the slave\'s root, and every other as given', () => {
    for (const [target, stored] of [
      [`${MNT}/d`, '/d'],
      [`${MNT}/d/`, '/d/'],
      [`${MNT}//d`, '//d'],
      [MNT, '/'],
      [`${MNT}/`, '/'],
      [`${MNT}x/d`, `${MNT}x/d`],
      ['/home/me', '/home/me'],
      ['/etc/hosts', '/etc/hosts'],
      ['d/../e', 'd/../e'],
      ['', ''],
    ]) {
      assert.equal(storedSymlinkTarget(MNT, target as string), stored, target);
    }
  });

  it('reads a stored link back exactly as it was written, for every target under the mount\'s path (seeded)', () => {
    const seed = SeededRandom.seedFromEnv();
    const r = new SeededRandom(seed);
    const parts = ['a', 'b', 'ü', '..x', '.', ''];
    for (let n = 0; n < 5000; n++) {
      const written = `${MNT}/${Array.from({ length: 1 + r.int(5) }, () => r.pick(parts)).join('/')}`;
      const stored = storedSymlinkTarget(MNT, written);
      assert.ok(stored.startsWith('/') && !stored.startsWith(MNT), `seed ${seed}: ${written} stored as ${stored}`);
      const shown = translatedSymlinkTarget(MNT, '/some/link', stored);
      // `MNT/` is stored as `/`, which shows as MNT: the one target that does not come back as written.
      assert.equal(shown, written === `${MNT}/` ? MNT : written, `seed ${seed}: ${written} stored as ${stored}`);
    }
  });
});
