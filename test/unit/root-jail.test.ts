import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { RootJail } from '../../agent/root-jail.js';
import { VerifiedDirs } from '../../agent/verified-dirs.js';

describe('root jail path resolution', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'splitbrain-jail-unit-'));
  const root = join(tmp, 'root');
  mkdirSync(join(root, 'a', 'b'), { recursive: true });
  writeFileSync(join(root, 'a', 'b', 'f'), 'x');
  symlinkSync('/a', join(root, 'abs'));
  symlinkSync('../../..', join(root, 'a', 'up'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const jail = RootJail.open(root);

  it('resolves plain paths under the root', () => {
    assert.equal(jail.resolve('/a/b/f'), join(jail.root, 'a/b/f'));
    assert.equal(jail.resolve('/'), jail.root);
  });
  it('clamps ".." at the root', () => {
    assert.equal(jail.resolve('/../../a'), join(jail.root, 'a'));
  });
  it('reads absolute symlinks as relative to the root', () => {
    assert.equal(jail.resolve('/abs/b/f'), join(jail.root, 'a/b/f'));
  });
  it('stops relative symlinks climbing out at the root', () => {
    assert.equal(jail.resolve('/a/up/a/b/f'), join(jail.root, 'a/b/f'));
  });
  it('does not follow the last component unless asked', () => {
    assert.equal(jail.resolve('/abs'), join(jail.root, 'abs'));
    assert.equal(jail.resolve('/abs', true), join(jail.root, 'a'));
  });
});

describe('root jail: directories verified before (issue 14, point 4)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'splitbrain-jail-cache-'));
  const root = join(tmp, 'root');
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const fresh = (name: string) => {
    mkdirSync(join(root, name, 'b'), { recursive: true });
    writeFileSync(join(root, name, 'b', 'f'), 'inside');
    mkdirSync(join(tmp, `outside-${name}`, 'b'), { recursive: true });
  };
  const jail = (() => {
    mkdirSync(root);
    return RootJail.open(root);
  })();
  /** Resolved inside the root, or nowhere (ENOENT: the absolute link read inside the root). */
  const staysInside = (path: string) => {
    let host: string;
    try {
      host = jail.resolve(path);
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOENT');
      return;
    }
    assert.ok(host.startsWith(`${jail.root}/`), host);
    assert.ok(!existsSync(host), host);
  };

  it('resolves a deep path the same way whether its directories were verified or not', () => {
    mkdirSync(join(root, ...Array.from({ length: 50 }, (_, i) => `d${i}`)), { recursive: true });
    const path = `/${Array.from({ length: 50 }, (_, i) => `d${i}`).join('/')}/f`;
    assert.equal(jail.resolve(path), join(jail.root, path));
    assert.equal(jail.resolve(path), join(jail.root, path));
  });

  it('does not take a symlink swapped in for a verified directory', () => {
    fresh('swap');
    assert.equal(jail.resolve('/swap/b/f'), join(jail.root, 'swap/b/f'));
    renameSync(join(root, 'swap', 'b'), join(tmp, 'outside-swap', 'moved'));
    symlinkSync(join(tmp, 'outside-swap', 'moved'), join(root, 'swap', 'b')); // the same inode, outside
    staysInside('/swap/b/f');
  });

  it('forgets what was under a directory it is told moved, and checks again', () => {
    fresh('moved');
    jail.resolve('/moved/b/f');
    renameSync(join(root, 'moved'), join(tmp, 'outside-moved', 'gone'));
    symlinkSync(join(tmp, 'outside-moved', 'gone'), join(root, 'moved')); // an ancestor, as a slave process could
    jail.forgetPrefix('/moved');
    staysInside('/moved/b/f');
  });

  it('checks a whole path again once its entries expire', () => {
    fresh('expire');
    const verified = new VerifiedDirs((p) => join(jail.root, p), 0);
    assert.equal(verified.verify('/expire/b'), true);
    renameSync(join(root, 'expire'), join(tmp, 'outside-expire', 'gone'));
    symlinkSync(join(tmp, 'outside-expire', 'gone'), join(root, 'expire'));
    assert.equal(verified.verify('/expire/b'), false);
  });
});

describe('root jail: trailing and repeated slashes (hostile-input seed 2617279891)', () => {
  // The bug: the fast path built the host path from posix.normalize('/////rel-out/'), which keeps
  // one trailing slash: '<root>/rel-out/'. The host follows a symlink before a trailing slash even
  // for lstat, so fs.readdir listed ../outside, and chmod, chown, utimens, getattr acted on it.
  const tmp = mkdtempSync(join(tmpdir(), 'splitbrain-jail-slashes-'));
  const root = join(tmp, 'root');
  mkdirSync(join(root, 'a', 'b'), { recursive: true });
  mkdirSync(join(tmp, 'outside'));
  writeFileSync(join(tmp, 'outside', 'canary'), 'outside');
  writeFileSync(join(root, 'a', 'b', 'f'), 'inside');
  symlinkSync('../outside', join(root, 'rel-out'));
  symlinkSync(join(tmp, 'outside'), join(root, 'abs-out'));
  symlinkSync('..', join(root, 'up'));
  symlinkSync('../../../outside', join(root, 'a', 'b', 'deep-out'));
  symlinkSync('b', join(root, 'a', 'to-b'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const jail = RootJail.open(root);

  /** A host path the host resolves nothing of: inside the root, canonical, its parents real. */
  const leftNothingToTheHost = (host: string, follow: boolean, path: string) => {
    const what = `${path} (follow ${follow}) -> ${host}`;
    assert.ok(host === jail.root || host.startsWith(`${jail.root}/`), what);
    assert.ok(!/\/\/|\/\.{1,2}(\/|$)|.\/$/.test(host), what);
    if (host !== jail.root) assert.equal(realpathSync(dirname(host)), dirname(host), what);
    if (follow && existsSync(host)) assert.ok(!lstatSync(host).isSymbolicLink(), what);
  };

  const names = ['rel-out', 'abs-out', 'up', 'a/b/deep-out', 'a/to-b', 'a/b', 'a/b/f', 'new', 'rel-out/canary', 'up/rel-out'];
  const shapes = (name: string) => {
    const out: string[] = [];
    for (let lead = 1; lead <= 5; lead++) {
      for (let trail = 0; trail <= 3; trail++) {
        out.push(`${'/'.repeat(lead)}${name.split('/').join('/'.repeat(lead))}${'/'.repeat(trail)}`);
      }
    }
    return [...out, `/${name}/.`, `/./${name}/./`, `/a/../${name}/`, `/up/../${name}//`, `${name}/`];
  };

  for (const follow of [false, true]) {
    it(`never leaves a slash, '.' or '..' for the host to resolve (follow the last: ${follow})`, () => {
      // Twice: cold, then with every directory on the way verified.
      for (let pass = 0; pass < 2; pass++) {
        for (const name of names) {
          for (const path of shapes(name)) {
            let host: string;
            try {
              host = jail.resolve(path, follow);
            } catch (err) {
              assert.ok(['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? ''), `${path}: ${String(err)}`);
              continue;
            }
            leftNothingToTheHost(host, follow, path);
          }
        }
      }
    });
  }

  it('reads "/////rel-out/" as "/rel-out": the link itself, or followed inside the root', () => {
    assert.equal(jail.resolve('/////rel-out/'), join(jail.root, 'rel-out'));
    assert.equal(jail.resolve('/////rel-out/', true), join(jail.root, 'outside'));
    assert.equal(jail.resolve('/////up//', true), jail.root);
    assert.equal(jail.resolve('//a//to-b//', true), join(jail.root, 'a/b'));
  });

  it('a cache asked about a path not in normal form says no, and forgets "/d/" as "/d"', () => {
    const verified = new VerifiedDirs((p) => `${jail.root}${p}`);
    for (const dir of ['/rel-out/', '//a', '/a/./b', '/a/b/..', 'a']) assert.equal(verified.verify(dir), false, dir);
    assert.equal(verified.verify('/a/b'), true);
    assert.equal(verified.size, 2);
    verified.forgetPrefix('/a/');
    assert.equal(verified.size, 0);
  });
});
