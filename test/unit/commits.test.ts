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

/**
 * The backend's three calls, on the real descriptors, with what was asked of them; `reopens`
 * false: no read-only descriptor can be had (as for a file the agent may not read).
 */
function recordingFiles(reopens = true) {
  const synced: number[] = [];
  const closed: number[] = [];
  /** What each released descriptor was opened again as, in order. */
  const readers = new Map<number, number>();
  return {
    synced,
    closed,
    readers,
    files: {
      fsync: async (fd: number) => { synced.push(fd); fsyncSync(fd); },
      close: async (fd: number) => { closed.push(fd); closeSync(fd); },
      reopenForSync: (fd: number) => {
        if (!reopens) return undefined;
        const reader = openSync(`/proc/self/fd/${fd}`, 'r');
        readers.set(fd, reader);
        return reader;
      },
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
  const { synced, closed, readers, files } = recordingFiles();
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
  // Every descriptor closes at its release; the first's read-only twin keeps the file for the commit.
  assert.deepEqual(closed, fds);
  const reader = readers.get(fds[0] as number) as number;
  assert.equal(readers.size, 1, 'one descriptor opened again for the file');
  assert.equal(openForWriting(path), false, 'nothing keeps the file open for writing (exec would fail with ETXTBSY)');
  await commits.commit();
  assert.deepEqual(synced, [reader], 'one fsync for the file, through its read-only descriptor');
  assert.deepEqual(closed, [...fds, reader], 'the read-only descriptor closes after the commit');
  assert.equal(readFileSync(path, 'utf8'), 'round 49\n');
  await commits.close();
});

test('descriptors of different files are each kept and synced; one still open keeps the file', async () => {
  const { synced, closed, readers, files } = recordingFiles();
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
  const rb = readers.get(b) as number;
  assert.deepEqual(closed, [a2, b], 'b is handed to a read-only descriptor and closed');
  const durable = await commits.commit();
  assert.equal(durable, 3);
  assert.deepEqual([...synced].sort((x, y) => x - y), [a, rb].sort((x, y) => x - y));
  assert.deepEqual(closed, [a2, b, rb], "b's reader closes after its commit; a is still open");
  // Written again after the commit: a is the file's keeper again, and is synced by the next.
  writeSync(a, Buffer.from('y'), 0, 1, 0);
  commits.wrote(a, 0, 1, undefined, inodeOf(a));
  await commits.release(a);
  const ra = readers.get(a) as number;
  assert.deepEqual(closed, [a2, b, rb, a], 'a holds unsynced data: its reader is kept for the commit');
  await commits.commit();
  assert.deepEqual(synced.slice(2), [ra]);
  assert.deepEqual(closed, [a2, b, rb, a, ra]);
  await commits.close();
});

test('a write without an inode is synced through its own read-only descriptor', async () => {
  const { synced, closed, readers, files } = recordingFiles();
  const commits = new Commits(files, 60_000, 1 << 30, pino({ level: 'silent' }));
  const path = join(dir, 'plain');
  const first = openSync(path, 'w');
  const second = openSync(path, 'r+');
  for (const fd of [first, second]) {
    writeSync(fd, Buffer.from('z'), 0, 1, 0);
    commits.wrote(fd, 0, 1);
    await commits.release(fd);
  }
  assert.deepEqual(closed, [first, second]);
  const kept = [readers.get(first), readers.get(second)] as number[];
  await commits.commit();
  assert.deepEqual([...synced].sort(), [...kept].sort());
  assert.deepEqual([...closed].sort(), [first, second, ...kept].sort());
  await commits.close();
});

test('where no read-only descriptor can be had, the written one stays open until the commit', async () => {
  const { synced, closed, files } = recordingFiles(false);
  const commits = new Commits(files, 60_000, 1 << 30, pino({ level: 'silent' }));
  const path = join(dir, 'unreadable');
  const fd = openSync(path, 'w');
  writeSync(fd, Buffer.from('w'), 0, 1, 0);
  commits.wrote(fd, 0, 1, undefined, inodeOf(fd));
  await commits.release(fd);
  assert.deepEqual(closed, [], 'kept: the data is not durable yet');
  await commits.commit();
  assert.deepEqual(synced, [fd]);
  assert.deepEqual(closed, [fd]);
  await commits.close();
});
