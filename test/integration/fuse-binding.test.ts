/**
 * The FUSE binding on its own (mount/native/), mounted in a temp dir with a handler written here:
 * a request is answered once. A second answer to the same handle, or any answer once the mount
 * is disposed, names no request: the reply returns false and writes nothing (before issue 23
 * the handle was the request's address, and a second answer wrote through freed memory).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { errnoNumber } from '../../protocol/index.js';
import { fuseBinding, type FuseBinding, type FuseRequest, type MountHandle } from '../../mount/native/binding.js';
import { isMounted } from '../../mount/mount-watch.js';
import { waitFor } from '../helpers/processes.js';

const ROOT = 1;

function rootAttr(b: FuseBinding): Float64Array {
  const attr = new Float64Array(b.attrSlots);
  attr[b.attrSlot.INO] = ROOT;
  attr[b.attrSlot.MODE] = 0o040755;
  attr[b.attrSlot.NLINK] = 2;
  return attr;
}

describe('the FUSE binding: one answer per request', () => {
  let dir: string;
  let mountPath: string;
  let binding: FuseBinding;
  let mount: MountHandle | undefined;
  let destroyed = false;
  /** What the second answer to each GETATTR of the root returned, in order. */
  const seconds: boolean[] = [];
  const firsts: boolean[] = [];
  const held: number[] = [];

  before(async () => {
    binding = fuseBinding();
    dir = await mkdtemp(join(tmpdir(), 'splitbrain-binding-'));
    mountPath = join(dir, 'mnt');
    await import('node:fs/promises').then((fs) => fs.mkdir(mountPath));
    const dispatch = (r: FuseRequest) => {
      const Op = binding.ops;
      if (r.op === Op.DESTROY) {
        destroyed = true;
        return;
      }
      if (r.op === Op.FORGET) return;
      if (r.op === Op.GETATTR && r.ino === ROOT) {
        firsts.push(binding.replyAttr(r.handle, rootAttr(binding), 0));
        seconds.push(binding.replyAttr(r.handle, rootAttr(binding), 0));
        seconds.push(binding.replyErr(r.handle, errnoNumber('EIO')));
        return;
      }
      if (r.op === Op.LOOKUP) {
        // Held, unanswered, until the mount is disposed: then it names no request.
        held.push(r.handle);
        return;
      }
      binding.replyErr(r.handle, errnoNumber('ENOSYS'));
    };
    mount = binding.mount(mountPath, 'fsname=binding-test,default_permissions', {
      posixAcl: false, writeback: false, cacheSymlinks: false, autoInvalData: true, killPriv: false, flock: false, maxWrite: 1 << 20,
    }, dispatch, () => undefined);
  });

  after(async () => {
    if (await isMounted(mountPath)) await new Promise((resolve) => spawn('fusermount3', ['-uz', mountPath]).on('close', resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('takes the first answer and refuses a second one to the same handle', async () => {
    const st = await stat(mountPath);
    assert.ok(st.isDirectory());
    assert.equal(st.ino, ROOT);
    assert.ok(firsts.length >= 1);
    assert.ok(firsts.every((sent) => sent), 'the first answer reached the kernel');
    assert.ok(seconds.length >= 2);
    assert.ok(seconds.every((sent) => !sent), 'a second answer names no request');
    // The mount still serves, unharmed.
    assert.ok((await stat(mountPath)).isDirectory());
  });

  it('answers what is still held when disposed, and refuses answers after that', async () => {
    // A lookup nobody answers: stat waits in the kernel until the mount goes.
    const pending = stat(join(mountPath, 'nothing-here')).then(() => 'found', (err: NodeJS.ErrnoException) => err.code);
    await waitFor('the lookup to reach the handler', () => held.length > 0, 10_000);
    binding.unmount(mount as MountHandle);
    await waitFor('the session to end', () => destroyed, 10_000);
    binding.dispose(mount as MountHandle);
    const outcome = await pending;
    assert.notEqual(outcome, 'found');
    for (const handle of held) assert.equal(binding.replyErr(handle, errnoNumber('ENOENT')), false);
    // Calls naming the disposed mount do nothing (it is marked disposed, not freed).
    binding.invalInode(mount as MountHandle, ROOT, 0, 0);
    binding.dispose(mount as MountHandle);
    assert.equal(await isMounted(mountPath), false);
  });
});
