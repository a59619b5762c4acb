import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { RootJail } from '../../agent/root-jail.js';

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
