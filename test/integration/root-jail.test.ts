/**
 * Nothing outside --root is reachable: not with '..', not through absolute or relative
 * symlinks, not through chains of them, whether reading, writing or creating. These requests
 * go straight to the agent, as a hostile master would send them.
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync } from 'node:fs';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SlaveError, attrFromWire } from '../../protocol/index.js';
import { rawClient, type RawClient } from '../helpers/raw-client.js';
import { startBareAgent, type BareAgent } from '../helpers/slave.js';

describe('root jail', () => {
  let slave: BareAgent;
  let raw: RawClient;
  let root: string;
  let outside: string;

  before(async () => {
    slave = await startBareAgent({
      id: 'jail',
      prepare: async (exported, tmp) => {
        outside = join(tmp, 'outside');
        await mkdir(outside);
        await writeFile(join(outside, 'secret'), 'outside the root');
        await writeFile(join(exported, 'inside'), 'inside the root');
        await symlink('/', join(exported, 'abs-root'));
        await symlink(outside, join(exported, 'abs-outside'));
        await symlink('../outside', join(exported, 'rel-outside'));
        await symlink('../../../../../../..', join(exported, 'far-up'));
        await symlink('hop2', join(exported, 'hop1'));
        await symlink('rel-outside', join(exported, 'hop2'));
        await mkdir(join(exported, 'sub'));
        await symlink('../../outside/secret', join(exported, 'sub', 'secret-link'));
      },
    });
    root = slave.root;
    raw = await rawClient(slave.nats.url, 'jail');
  });
  after(async () => {
    await raw?.close();
    await slave?.stop();
  });

  const escapes = [
    '/../outside/secret', '/../../../../../../../' + 'etc/passwd', '/sub/../../outside/secret',
    '/abs-outside/secret', '/rel-outside/secret', '/far-up/outside/secret', '/hop1/secret',
    '/abs-root/etc/passwd',
  ];

  for (const path of escapes) {
    it(`cannot read ${path}`, async () => {
      await assert.rejects(async () => {
        const { fh } = await raw.client.call('fs.open', { path, flags: 0 });
        const { data } = await raw.client.call('fs.read', { fh, offset: 0, length: 100 });
        throw new Error(`read ${Buffer.from(data).toString()}`);
      }, (err: unknown) => err instanceof SlaveError && err.errnoName === 'ENOENT');
    });
  }

  it('".." at the root stays at the root', async () => {
    const viaDots = attrFromWire((await raw.client.call('fs.getattr', { path: '/../../inside' })).attr);
    const direct = attrFromWire((await raw.client.call('fs.getattr', { path: '/inside' })).attr);
    assert.equal(viaDots.ino, direct.ino);
  });

  it('cannot create, rename or link outside', async () => {
    await assert.rejects(raw.client.call('fs.create', { path: '/abs-outside/created', flags: 1, mode: 0o644 }));
    await assert.rejects(raw.client.call('fs.mkdir', { path: '/rel-outside/made', mode: 0o755 }));
    await assert.rejects(raw.client.call('fs.rename', { from: '/inside', to: '/hop1/moved' }));
    await assert.rejects(raw.client.call('fs.link', { existing: '/inside', path: '/far-up/outside/linked' }));
    await raw.client.call('fs.symlink', { target: '/etc/passwd', path: '/made-link' }); // content is not resolved
    assert.equal((await raw.client.call('fs.readlink', { path: '/made-link' })).target, '/etc/passwd');
    await assert.rejects(raw.client.call('fs.open', { path: '/made-link', flags: 0 })); // never followed
    for (const name of ['created', 'made', 'moved', 'linked']) assert.ok(!existsSync(join(outside, name)), name);
    assert.ok(existsSync(join(root, 'inside')));
  });

  it('a symlink chain that loops gives ELOOP', async () => {
    await symlink('loop-b', join(root, 'loop-a'));
    await symlink('loop-a', join(root, 'loop-b'));
    await assert.rejects(raw.client.call('fs.getattr', { path: '/loop-a/x' }),
      (err: unknown) => err instanceof SlaveError && err.errnoName === 'ELOOP');
  });

  it('a symlink that stays inside still works', async () => {
    await symlink('sub', join(root, 'to-sub'));
    await writeFile(join(root, 'sub', 'file'), 'ok');
    const { fh } = await raw.client.call('fs.open', { path: '/to-sub/file', flags: 0 });
    const { data } = await raw.client.call('fs.read', { fh, offset: 0, length: 10 });
    assert.equal(Buffer.from(data).toString(), 'ok');
  });

  it('a directory used before, moved and replaced by a symlink leading out, leads nowhere (issue 14, point 4)', async () => {
    await raw.client.call('fs.mkdir', { path: '/verified', mode: 0o755 });
    await raw.client.call('fs.mkdir', { path: '/verified/deeper', mode: 0o755 });
    await assert.rejects(raw.client.call('fs.getattr', { path: '/verified/deeper/secret' })); // verifies both
    await raw.client.call('fs.rename', { from: '/verified', to: '/elsewhere' });
    await raw.client.call('fs.symlink', { target: '../outside', path: '/verified' });
    for (const path of ['/verified/secret', '/verified/deeper/secret']) {
      await assert.rejects(raw.client.call('fs.getattr', { path }), (err: unknown) => err instanceof SlaveError && err.errnoName === 'ENOENT', path);
    }
    // Swapped by a process on the slave: the directory itself is checked at every use.
    await raw.client.call('fs.mkdir', { path: '/swapped', mode: 0o755 });
    await assert.rejects(raw.client.call('fs.getattr', { path: '/swapped/secret' }));
    await rm(join(root, 'swapped'), { recursive: true });
    await symlink(outside, join(root, 'swapped'));
    await assert.rejects(raw.client.call('fs.getattr', { path: '/swapped/secret' }), (err: unknown) => err instanceof SlaveError && err.errnoName === 'ENOENT');
  });

  it('a trailing or repeated slash does not follow a link out (hostile-input seed 2617279891: fs.readdir of "/////rel-out/")', async () => {
    const outsideIno = lstatSync(outside).ino;
    const { mode: outsideMode, mtimeMs: outsideMtime } = lstatSync(outside);
    const enoent = (err: unknown) => err instanceof SlaveError && err.errnoName === 'ENOENT';
    for (const path of ['/////rel-outside/', '/rel-outside//', '//abs-outside/', '/sub/../rel-outside/', '/hop1/']) {
      await assert.rejects(raw.client.call('fs.readdir', { path }), enoent, `readdir ${path}`);
      await assert.rejects(raw.client.call('fs.chmod', { path, mode: 0o777 }), enoent, `chmod ${path}`);
      const { attr } = await raw.client.call('fs.getattr', { path }); // the link itself
      assert.notEqual(attrFromWire(attr).ino, outsideIno, `getattr ${path}`);
      await raw.client.call('fs.utimens', { path, atime: 0, mtime: 0 }); // the link itself
    }
    assert.equal(lstatSync(outside).mode, outsideMode);
    assert.equal(lstatSync(outside).mtimeMs, outsideMtime);
    assert.ok(existsSync(join(outside, 'secret')));
  });
});
