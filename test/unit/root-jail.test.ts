import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
