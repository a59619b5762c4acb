/**
 * Whatever arrives, the agent answers with an error reply and keeps serving: malformed bytes,
 * unknown ops, wrong types, hostile values, unknown handles.
 */
import assert from 'node:assert/strict';
import { constants, existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { LONG_PATH_MAX, PROTOCOL_VERSION, SlaveError, decodeReply, opSubject } from '../../protocol/index.js';
import { pack } from '../helpers/hostile-values.js';
import { sh } from '../helpers/processes.js';
import { rawClient, type RawClient } from '../helpers/raw-client.js';
import { startBareAgent, type BareAgent } from '../helpers/slave.js';

describe('agent robustness', () => {
  let slave: BareAgent;
  let raw: RawClient;

  before(async () => {
    slave = await startBareAgent({ id: 'robust' });
    raw = await rawClient(slave.nats.url, 'robust');
  });
  after(async () => {
    await raw?.close();
    await slave?.stop();
  });

  /** Sends raw bytes to an op subject and returns the errno of the (error) reply. */
  async function errnoFor(op: string, body: Uint8Array): Promise<string> {
    const reply = decodeReply('fs.getattr', await raw.bus.request(opSubject('robust', op), body, 5000));
    assert.equal(reply.ok, false, `${op} should have failed`);
    return reply.ok ? 'OK' : reply.error.errnoName;
  }

  // First, while the export root is still empty.
  it('does not remove the export root itself, even empty', async () => {
    for (const path of ['/', '/x/..', '/../..']) {
      await assert.rejects(raw.client.call('fs.rmdir', { path }), (err: unknown) => err instanceof SlaveError && err.errnoName === 'EBUSY');
    }
    assert.ok(existsSync(slave.root));
  });

  it('opens only regular files and directories: a FIFO (which once held a thread-pool thread until its other end came) is ENXIO at once, a device EACCES', async () => {
    await sh(`mkfifo '${slave.root}/fifo' && mknod '${slave.root}/null-device' c 1 3 && echo data > '${slave.root}/plain'`);
    const refused = (errno: string) => (err: unknown) => err instanceof SlaveError && err.errnoName === errno;
    // More opens than Node has threads: had any of them blocked, the read below would wait.
    await Promise.all(Array.from({ length: 8 }, () =>
      assert.rejects(raw.client.call('fs.open', { path: '/fifo', flags: constants.O_RDONLY }), refused('ENXIO'))));
    await assert.rejects(raw.client.call('fs.open', { path: '/fifo', flags: constants.O_WRONLY }), refused('ENXIO'));
    await assert.rejects(raw.client.call('fs.open', { path: '/null-device', flags: constants.O_RDWR }), refused('EACCES'));
    const { fh } = await raw.client.call('fs.open', { path: '/plain', flags: constants.O_RDONLY });
    const { data } = await raw.client.call('fs.read', { fh, offset: 0, length: 100 });
    assert.equal(Buffer.from(data).toString(), 'data\n');
    await raw.client.call('fs.release', { fh });
  });

  it('answers malformed messages with EPROTO', async () => {
    assert.equal(await errnoFor('fs.getattr', new Uint8Array(0)), 'EPROTO');
    assert.equal(await errnoFor('fs.getattr', Buffer.from('not msgpack at all \xff\xfe')), 'EPROTO');
    assert.equal(await errnoFor('fs.getattr', Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])), 'EPROTO'); // array of 4 G entries
    assert.equal(await errnoFor('fs.getattr', Buffer.from([0xc6, 0x7f, 0xff, 0xff, 0xff, 1, 2])), 'EPROTO'); // bin of 2 GiB, 2 bytes there
    assert.equal(await errnoFor('fs.read', pack({ v: 1, id: 'x', a: { fh: 'one', offset: 0, length: 1 } })), 'EPROTO');
    assert.equal(await errnoFor('fs.read', pack({ v: 1, id: 'x', a: { fh: 1, offset: -5, length: 1 } })), 'EPROTO');
    assert.equal(await errnoFor('fs.getattr', pack({ v: 1, id: 'x', a: { path: 'relative' } })), 'EPROTO');
    assert.equal(await errnoFor('fs.getattr', pack({ v: 1, id: 'x', a: { path: '/a\0b' } })), 'EPROTO');
    assert.equal(await errnoFor('fs.getattr', pack({ v: 1, id: 'x', a: { path: `/${'x'.repeat(LONG_PATH_MAX)}` } })), 'EPROTO');
    assert.equal(await errnoFor('fs.write', pack({ v: 1, id: 'x', a: { fh: 1, offset: 0, data: 'text, not bytes' } })), 'EPROTO');
  });

  it('answers unknown ops with ENOSYS and newer protocols with EPROTONOSUPPORT', async () => {
    assert.equal(await errnoFor('fs.teleport', pack({ v: 1, id: 'x', a: {} })), 'ENOSYS');
    assert.equal(await errnoFor('nothing', new Uint8Array(3)), 'ENOSYS');
    assert.equal(await errnoFor('fs.getattr', pack({ v: 99, id: 'x', a: { path: '/' } })), 'EPROTONOSUPPORT');
  });

  it('answers unknown handles with EBADF', async () => {
    await assert.rejects(raw.client.call('fs.read', { fh: 424242, offset: 0, length: 10 }),
      (err: unknown) => err instanceof SlaveError && err.errnoName === 'EBADF');
    await assert.rejects(raw.client.call('fs.release', { fh: 424242 }),
      (err: unknown) => err instanceof SlaveError && err.errnoName === 'EBADF');
  });

  it('clamps a read larger than a message to what fits', async () => {
    await raw.client.call('fs.create', { path: '/big', flags: 2, mode: 0o644 }).then(async ({ fh }) => {
      await raw.client.call('fs.write', { fh, offset: 0, data: new Uint8Array(900_000) });
      await raw.client.call('fs.ftruncate', { fh, size: 4 << 20 });
      const { data } = await raw.client.call('fs.read', { fh, offset: 0, length: 0xffffffff });
      assert.ok(data.length > 0 && data.length < raw.bus.maxPayload);
      await raw.client.call('fs.release', { fh });
    });
  });

  it('answers what the fuzz test (hostile-input.test.ts) found with the right errno', async () => {
    // Were: EIO (Node's argument errors carry no errno), ENODATA for a NUL in an attribute name
    // (the xattr library cut the name there), and, for the last, a success.
    assert.equal(await errnoFor('fs.symlink', pack({ v: 1, id: 'x', a: { target: 'a\0b', path: '/l' } })), 'EPROTO');
    assert.equal(await errnoFor('fs.getxattr', pack({ v: 1, id: 'x', a: { path: '/', name: 'user.a\0b' } })), 'EPROTO');
    assert.equal(await errnoFor('fs.chown', pack({ v: 1, id: 'x', a: { path: '/', uid: 2 ** 40, gid: 0 } })), 'EPROTO');
    assert.equal(await errnoFor('fs.access', pack({ v: 1, id: 'x', a: { path: '/', mode: 8 } })), 'EPROTO');
    assert.equal(await errnoFor('fs.mknod', pack({ v: 1, id: 'x', a: { path: `/${'x'.repeat(300)}`, mode: 0o010644, rdev: 0 } })), 'ENAMETOOLONG');
    assert.equal(await errnoFor('fs.getattr', pack({ v: PROTOCOL_VERSION + 1, id: 'x', a: 'a newer shape' })), 'EPROTONOSUPPORT');
    // '/pts/..' matched the default --dev-allow 'pts/*' and opened the dev root.
    assert.equal(await errnoFor('dev.open', pack({ v: 1, id: 'x', a: { path: '/pts/..', flags: 0 } })), 'EACCES');
  });

  it('serves what comes while it lists the directories below a listing (fs.readdir below): a statfs sent after it is answered first', async () => {
    // 400 directories of one file each: listing them below /walk is hundreds of system calls,
    // far more than the millisecond after which the agent serves what came meanwhile.
    await sh(`cd '${slave.root}' && mkdir walk && cd walk && for i in $(seq 400); do mkdir d$i && : > d$i/f; done`);
    // Listed once first: the change feed then watches /walk, and the listing below starts at once
    // (the first request in a directory waits for the watch, and others are served meanwhile).
    await raw.client.call('fs.readdir', { path: '/walk' });
    let listedAt: 'before' | 'after' | undefined;
    let statfsDone = false;
    const listing = raw.client.call('fs.readdir', { path: '/walk', below: 512 }).then((reply) => {
      listedAt = statfsDone ? 'after' : 'before';
      return reply;
    });
    await raw.client.call('fs.statfs', { path: '/' });
    // Had the statfs waited behind the listing, both replies would have come together.
    await new Promise<void>((resolve) => setImmediate(resolve));
    statfsDone = true;
    const listed = await listing;
    assert.equal(listedAt, 'after', 'the statfs was answered only with the listing');
    // And the listing is whole all the same: every directory below with its file.
    assert.equal(listed.entries.length, 400);
    const below = listed.below ?? [];
    assert.ok(below.length >= 200, `${below.length} directories listed below`);
    for (const [dir, entries] of below) assert.deepEqual(entries.map(([name]) => name), ['f'], dir);
  });

  it('is still serving after all of that', async () => {
    const hello = await raw.client.hello();
    assert.equal(hello.agentId, 'robust');
    assert.equal(slave.agent.child.exitCode, null);
  });
});
