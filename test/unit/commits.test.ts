/**
 * The agent's background commits (agent/fs/commits.ts) on real descriptors of real files: a
 * file written through many descriptors between two commits is synced once, through the one
 * descriptor kept for it, and the others close at their release.
 */
import { strict as assert } from 'node:assert';
import {
  closeSync, fstatSync, fsyncSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync, writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { Commits } from '../../agent/fs/commits.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-commits-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The backend's two calls, on the real descriptors, with what was asked of them. */
function recordingFiles() {
  const synced: number[] = [];
  const closed: number[] = [];
  return {
    synced,
    closed,
    files: {
      fsync: async (fd: number) => { synced.push(fd); fsyncSync(fd); },
      close: async (fd: number) => { closed.push(fd); closeSync(fd); },
    },
  };
}

/** True while some descriptor of this process has `path` open for writing (what exec(2) refuses with ETXTBSY). */
function openForWriting(path: string): boolean {
  const target = realpathSync(path);
  for (const name of readdirSync('/proc/self/fdinfo')) {
    let info: string;
    let linked: string;
    try {
      info = readFileSync(`/proc/self/fdinfo/${name}`, 'utf8');
      linked = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue;
    }
    const flags = Number.parseInt(/flags:\s+([0-7]+)/.exec(info)?.[1] ?? '0', 8);
    if (linked === target && (flags & 3) !== 0) return true;
  }
  return false;
}

const inodeOf = (fd: number): string => {
  const st = fstatSync(fd, { bigint: true });
  return `${st.dev}:${st.ino}`;
};

test('a file opened, written and released many times between commits is synced through one descriptor', async () => {
  const { synced, closed, files } = recordingFiles();
  const commits = new Commits(files, 60_000, 1 << 30, pino({ level: 'silent' }));
  const path = join(dir, 'rewritten');
  const fds: number[] = [];
  for (let i = 0; i < 50; i++) {
    const fd = openSync(path, 'w');
    const data = Buffer.from(`round ${i}\n`);
    writeSync(fd, data, 0, data.length, 0);
    commits.wrote(fd, 0, data.length, undefined, inodeOf(fd));
    fds.push(fd);
    await commits.release(fd);
  }
  // The first descriptor is the file's keeper: it waits for the commit; the 49 others are closed.
  assert.deepEqual(closed, fds.slice(1));
  await commits.commit();
  assert.deepEqual(synced, [fds[0]], 'one fsync for the file');
  assert.deepEqual(closed, [...fds.slice(1), fds[0]], 'the keeper closes after the commit');
  assert.equal(readFileSync(path, 'utf8'), 'round 49\n');
  await commits.close();
});

test('descriptors of different files are each kept and synced; one still open keeps the file', async () => {
  const { synced, closed, files } = recordingFiles();
  const commits = new Commits(files, 60_000, 1 << 30, pino({ level: 'silent' }));
  const a = openSync(join(dir, 'a'), 'w');
  const b = openSync(join(dir, 'b'), 'w');
  const a2 = openSync(join(dir, 'a'), 'r+');
  for (const fd of [a, b, a2]) {
    writeSync(fd, Buffer.from('x'), 0, 1, 0);
    commits.wrote(fd, 0, 1, undefined, inodeOf(fd));
  }
  // a stays open (a program's handle): a2's release closes a2, whose data a's fsync covers.
  await commits.release(a2);
  await commits.release(b);
  assert.deepEqual(closed, [a2]);
  const durable = await commits.commit();
  assert.equal(durable, 3);
  assert.deepEqual([...synced].sort((x, y) => x - y), [a, b].sort((x, y) => x - y));
  assert.deepEqual(closed, [a2, b], 'b closes after its commit; a is still open');
  // Written again after the commit: a is the file's keeper again, and is synced by the next.
  writeSync(a, Buffer.from('y'), 0, 1, 0);
  commits.wrote(a, 0, 1, undefined, inodeOf(a));
  await commits.release(a);
  assert.deepEqual(closed, [a2, b], 'a holds unsynced data: kept for the commit');
  await commits.commit();
  assert.deepEqual(closed, [a2, b, a]);
  await commits.close();
});

test('a write without an inode keeps its descriptor until the commit, as before', async () => {
  const { synced, closed, files } = recordingFiles();
  const commits = new Commits(files, 60_000, 1 << 30, pino({ level: 'silent' }));
  const path = join(dir, 'plain');
  const first = openSync(path, 'w');
  const second = openSync(path, 'r+');
  for (const fd of [first, second]) {
    writeSync(fd, Buffer.from('z'), 0, 1, 0);
    commits.wrote(fd, 0, 1);
    await commits.release(fd);
  }
  assert.deepEqual(closed, []);
  await commits.commit();
  assert.deepEqual([...synced].sort(), [first, second].sort());
  assert.deepEqual([...closed].sort(), [first, second].sort());
  await commits.close();
});

test('before a program runs, the commit is made and nothing is kept open: the file can be run (no ETXTBSY)', async () => {
  const { synced, closed, files } = recordingFiles();
  const commits = new Commits(files, 60_000, 1 << 30, pino({ level: 'silent' }));
  const path = join(dir, 'script');
  const first = openSync(path, 'w');
  const second = openSync(path, 'r+');
  for (const fd of [first, second]) {
    writeSync(fd, Buffer.from('#!/bin/sh\n'), 0, 10, 0);
    commits.wrote(fd, 0, 10, undefined, inodeOf(fd));
    await commits.release(fd);
  }
  assert.deepEqual(closed, [second], 'the first is kept for the commit');
  assert.equal(openForWriting(path), true);
  await commits.unbusy();
  assert.deepEqual(synced, [first], 'synced');
  assert.deepEqual(closed, [second, first], 'and closed before the program runs');
  assert.equal(openForWriting(path), false);
  assert.equal(commits.durable, 2, 'both writes durable');
  await commits.unbusy();
  assert.deepEqual(synced, [first], 'nothing kept: no commit');
  await commits.close();
});

test('a kept descriptor whose sync fails stays for the next commit, and its writes are not durable meanwhile', async () => {
  const { closed, files } = recordingFiles();
  let failures = 1;
  const failing = { ...files, fsync: async (fd: number) => {
    if (failures-- > 0) throw Object.assign(new Error('EIO'), { code: 'EIO' });
    await files.fsync(fd);
  } };
  const commits = new Commits(failing, 60_000, 1 << 30, pino({ level: 'silent' }));
  const fd = openSync(join(dir, 'retried'), 'w');
  writeSync(fd, Buffer.from('x'), 0, 1, 0);
  commits.wrote(fd, 0, 1, undefined, inodeOf(fd));
  await commits.release(fd);
  await commits.unbusy();
  assert.deepEqual(closed, [], 'not synced: kept');
  assert.equal(commits.durable, 0);
  assert.equal(await commits.commit(), 1, 'the next commit syncs it');
  assert.deepEqual(closed, [fd]);
  await commits.close();
});

test('a kept descriptor a running commit is syncing is closed before a program runs too', async () => {
  const { closed, files } = recordingFiles();
  let finishSync: () => void = () => undefined;
  const slow = { ...files, fsync: async (fd: number) => {
    await new Promise<void>((resolve) => { finishSync = resolve; });
    await files.fsync(fd);
  } };
  const commits = new Commits(slow, 60_000, 1 << 30, pino({ level: 'silent' }));
  const path = join(dir, 'syncing');
  const fd = openSync(path, 'w');
  writeSync(fd, Buffer.from('#!/bin/sh\n'), 0, 10, 0);
  commits.wrote(fd, 0, 10, undefined, inodeOf(fd));
  const committing = commits.commit(); // fd is being synced ...
  await commits.release(fd); // ... when its file is released
  assert.equal(openForWriting(path), true);
  const ready = commits.unbusy();
  setTimeout(() => finishSync(), 20);
  await ready;
  assert.deepEqual(closed, [fd], 'closed once its fsync was done');
  assert.equal(openForWriting(path), false);
  assert.equal(await committing, 1);
  await commits.close();
});
