/**
 * Issue 14: the kernel keeps names, attributes and "no such file" answers for a minute, and
 * stays true to the slave: a change made on the slave reaches the mount through the agent's
 * change feed, a lost feed (an inotify overflow) makes the mount forget, never answer stale.
 * Also the POSIX fidelity a node-based mount gives: hard links are one inode, times keep their
 * nanoseconds, names are bytes, listings carry the slave's inode numbers, and depth costs
 * nothing but a path. Both suites run in both watch modes: auto (fanotify here, as root) and
 * inotify.
 */
import assert from 'node:assert/strict';
import { appendFile, lstat, mkdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sh, waitFor } from '../helpers/processes.js';
import { startAgentProcess, startBareAgent, startMountProcess, waitForLiveFeed, type AgentProcess, type BareAgent, type MountProcess } from '../helpers/slave.js';
import { WATCH_MODES, watchModeArgs, watcherPid, withSmallQueues } from '../helpers/watch-modes.js';

/** Far below the kernel's 60 s: a change seen this soon was pushed, not expired. */
const SEEN_WITHIN_MS = 2000;

async function python(code: string): Promise<string> {
  return sh(`python3 -c '${code.replace(/'/g, '\'"\'"\'')}'`);
}

for (const mode of WATCH_MODES) describe(`kernel caching kept coherent by the slave (--watch-mode ${mode})`, () => {
  let slave: BareAgent;
  let mounted: MountProcess;
  let mnt: string;

  before(async () => {
    slave = await startBareAgent({ id: 'kernel-cache', agentArgs: watchModeArgs(mode) });
    mnt = join(slave.tmp, 'mnt');
    await mkdir(mnt);
    mounted = await startMountProcess(slave.nats.url, mnt, ['--agent', slave.agent.id, '--log-level', 'info']);
    await waitForLiveFeed(mounted);
  });
  after(async () => {
    await mounted?.stop();
    await slave?.stop();
  });

  it('shows a change made on the slave at once, though the kernel keeps answers a minute', async () => {
    await writeFile(join(slave.root, 'seen'), 'v0');
    await writeFile(join(slave.root, 'gone'), 'x');
    assert.equal((await stat(join(mnt, 'seen'))).size, 2);
    await assert.rejects(stat(join(mnt, 'later')), { code: 'ENOENT' }); // a cached "no such file"
    assert.ok((await stat(join(mnt, 'gone'))).isFile());
    for (let i = 1; i <= 20; i++) {
      await appendFile(join(slave.root, 'seen'), 'x');
      await waitFor(`size change ${i}`, async () => (await stat(join(mnt, 'seen'))).size === 2 + i, SEEN_WITHIN_MS, 1);
    }
    await writeFile(join(slave.root, 'later'), 'new');
    await waitFor('a new name', async () => (await readFile(join(mnt, 'later'), 'utf8').catch(() => '')) === 'new', SEEN_WITHIN_MS, 1);
    await sh(`rm '${join(slave.root, 'gone')}'`);
    await waitFor('a removed name', async () => !(await stat(join(mnt, 'gone')).then(() => true, () => false)), SEEN_WITHIN_MS, 1);
    await sh(`chmod 600 '${join(slave.root, 'seen')}'`);
    await waitFor('a mode', async () => ((await stat(join(mnt, 'seen'))).mode & 0o777) === 0o600, SEEN_WITHIN_MS, 1);
    // Data too: the page cache of a file changed in place is dropped.
    await writeFile(join(slave.root, 'seen'), 'rewritten-in-place-xxxxxxxxxxx');
    await waitFor('new content', async () => (await readFile(join(mnt, 'seen'), 'utf8')) === 'rewritten-in-place-xxxxxxxxxxx', SEEN_WITHIN_MS, 1);
  });

  it('makes a hard link one inode: a change through one name shows through the other, nlink too', async () => {
    await writeFile(join(mnt, 'h1'), 'linked');
    await sh(`ln '${join(mnt, 'h1')}' '${join(mnt, 'h2')}'`);
    assert.equal((await stat(join(mnt, 'h1'))).nlink, 2);
    await sh(`chmod 640 '${join(mnt, 'h2')}'`);
    assert.equal((await stat(join(mnt, 'h1'))).mode & 0o777, 0o640);
    assert.equal((await stat(join(mnt, 'h1'))).ino, (await stat(join(mnt, 'h2'))).ino);
    await sh(`rm '${join(mnt, 'h2')}'`);
    assert.equal((await stat(join(mnt, 'h1'))).nlink, 1);
  });

  it('keeps a hard link\'s other names when the slave removes the name the mount knew it by first', async () => {
    await writeFile(join(mnt, 'first'), 'linked');
    await sh(`ln '${join(mnt, 'first')}' '${join(mnt, 'second')}' && ln -s target '${join(mnt, 'sfirst')}' && ln '${join(mnt, 'sfirst')}' '${join(mnt, 'ssecond')}'`);
    assert.equal((await stat(join(mnt, 'second'))).nlink, 2);
    assert.equal((await lstat(join(mnt, 'ssecond'))).nlink, 2);
    await sh(`rm '${join(slave.root, 'first')}' '${join(slave.root, 'sfirst')}'`);
    await waitFor('one name left', async () => (await stat(join(mnt, 'second'))).nlink === 1, SEEN_WITHIN_MS, 1);
    assert.equal(await readFile(join(mnt, 'second'), 'utf8'), 'linked');
    await waitFor('one name of the link left', async () => (await lstat(join(mnt, 'ssecond'))).nlink === 1, SEEN_WITHIN_MS, 1);
    assert.equal(await readlink(join(mnt, 'ssecond')), 'target');
    await assert.rejects(stat(join(mnt, 'first')), { code: 'ENOENT' });
  });

  it('keeps nanoseconds both ways', async () => {
    const out = await python([
      'import os',
      `m = "${mnt}"; s = "${slave.root}"`,
      'open(m + "/t", "w").close()',
      'os.utime(m + "/t", ns=(1002003004, 1700000000123456789))',
      'print(os.stat(m + "/t").st_atime_ns, os.stat(m + "/t").st_mtime_ns, os.stat(s + "/t").st_mtime_ns)',
      'open(s + "/u", "w").close()',
      'os.utime(s + "/u", ns=(5, 1600000000987654321))',
      'import time; time.sleep(0.2)',
      'print(os.stat(m + "/u").st_mtime_ns)',
    ].join('\n'));
    assert.equal(out, '1002003004 1700000000123456789 1700000000123456789\n1600000000987654321\n');
  });

  it('takes names as bytes: a name that is not UTF-8 is created, listed and renamed exactly', async () => {
    const out = await python([
      'import os',
      `m = "${mnt}".encode(); s = "${slave.root}".encode()`,
      'os.mkdir(m + b"/bytes")',
      'fd = os.open(m + b"/bytes/a\\xffb", os.O_CREAT | os.O_WRONLY, 0o644); os.write(fd, b"z"); os.close(fd)',
      'print(os.listdir(m + b"/bytes"), os.listdir(s + b"/bytes"))',
      'os.rename(m + b"/bytes/a\\xffb", m + b"/bytes/\\xfe")',
      'print(os.listdir(m + b"/bytes"), os.listdir(s + b"/bytes"), open(m + b"/bytes/\\xfe", "rb").read())',
    ].join('\n'));
    assert.equal(out, "[b'a\\xffb'] [b'a\\xffb']\n[b'\\xfe'] [b'\\xfe'] b'z'\n");
  });

  it('shows a slave change to a name that is not UTF-8 through exactly that name', async () => {
    const out = await python([
      'import os, time',
      `m = "${mnt}".encode(); s = "${slave.root}".encode()`,
      'os.mkdir(s + b"/slave-bytes")',
      'open(s + b"/slave-bytes/a\\xffb", "wb").write(b"v0")',
      'open(s + b"/slave-bytes/a\\xfeb", "wb").write(b"other")',
      'print(os.stat(m + b"/slave-bytes/a\\xffb").st_size, os.stat(m + b"/slave-bytes/a\\xfeb").st_size, os.path.exists(m + b"/slave-bytes/n\\xff"))',
      'open(s + b"/slave-bytes/a\\xffb", "ab").write(b"123")',
      'open(s + b"/slave-bytes/n\\xff", "wb").write(b"new")',
      'def seen(test):',
      '    end = time.time() + 2',
      '    while time.time() < end:',
      '        if test(): return True',
      '        time.sleep(0.005)',
      '    return False',
      'print(seen(lambda: os.stat(m + b"/slave-bytes/a\\xffb").st_size == 5), seen(lambda: os.path.exists(m + b"/slave-bytes/n\\xff")))',
      'print(sorted(os.listdir(m + b"/slave-bytes")))',
    ].join('\n'));
    assert.equal(out, "2 5 False\nTrue True\n[b'a\\xfeb', b'a\\xffb', b'n\\xff']\n");
  });

  it('lists the slave\'s inode numbers, as stat reports them', async () => {
    await mkdir(join(mnt, 'inodes'));
    for (let i = 0; i < 20; i++) await writeFile(join(mnt, 'inodes', `f${i}`), 'x');
    await mkdir(join(slave.root, 'inodes', 'sub'));
    const out = await python([
      'import os',
      `d = "${mnt}/inodes"`,
      'bad = [e.name for e in os.scandir(d) if e.inode() != os.stat(e.path, follow_symlinks=False).st_ino]',
      'print(len(os.listdir(d)), bad)',
    ].join('\n'));
    assert.equal(out, '21 []\n');
  });

  it('creates, walks and removes a tree 200 directories deep', async () => {
    const out = await python([
      'import os, shutil',
      `top = "${mnt}/deep"; p = top`,
      'for i in range(200):',
      '    p = os.path.join(p, "d%d" % i); os.makedirs(p)',
      '    open(os.path.join(p, "f"), "w").write(str(i))',
      'walked = sum(len(files) for _, _, files in os.walk(top))',
      'print(walked, open(os.path.join(p, "f")).read())',
      'shutil.rmtree(top)',
      'print(os.path.exists(top))',
      // Removals are answered at once and applied in order: an fsync of the directory that held
      // the tree returns once they are (docs/architecture.md, the consistency model).
      `fd = os.open("${mnt}", os.O_RDONLY); os.fsync(fd); os.close(fd)`,
    ].join('\n'));
    assert.equal(out, '200 199\nFalse\n');
    assert.equal(await stat(join(slave.root, 'deep')).then(() => true, () => false), false);
  });
});

for (const mode of WATCH_MODES) describe(`a lost change feed (--watch-mode ${mode})`, () => {
  let slave: BareAgent;
  let agent: AgentProcess;
  let mounted: MountProcess;
  let mnt: string;

  before(async () => {
    slave = await startBareAgent({ id: 'feed-keeper' });
    agent = await withSmallQueues(() => startAgentProcess(slave.nats.url, 'feed-lost', slave.root, watchModeArgs(mode)));
    mnt = join(slave.tmp, 'mnt');
    await mkdir(mnt);
    mounted = await startMountProcess(slave.nats.url, mnt, ['--agent', 'feed-lost', '--log-level', 'info']);
    await waitForLiveFeed(mounted);
  });
  after(async () => {
    await mounted?.stop();
    await agent?.stop();
    await slave?.stop();
  });

  it('after a queue overflow, forgets what it cached instead of answering stale', async () => {
    await mkdir(join(slave.root, 'o'));
    await writeFile(join(slave.root, 'o', 'cached'), 'old');
    assert.equal(await readFile(join(mnt, 'o', 'cached'), 'utf8'), 'old');
    const watcher = await watcherPid(agent);
    process.kill(watcher, 'SIGSTOP');
    try {
      for (let i = 0; i < 100; i++) await writeFile(join(slave.root, 'o', `f${i}`), 'x');
      await writeFile(join(slave.root, 'o', 'cached'), 'new!');
    } finally {
      process.kill(watcher, 'SIGCONT');
    }
    await waitFor('the mount forgot', async () => (await readFile(join(mnt, 'o', 'cached'), 'utf8')) === 'new!', SEEN_WITHIN_MS, 5);
    await waitFor('the loss logged', () => /changes may have been missed|not live/.test(mounted.log()), SEEN_WITHIN_MS, 5);
    assert.equal((await sh(`ls '${join(mnt, 'o')}' | wc -l`)).trim(), '101');
  });

  it('keeps what is mounted on a name inside the mount when it forgets everything (an agent restart)', async () => {
    // As a sidecar binds the device tree over the slave's /dev: dropping the name would detach it.
    const source = join(slave.tmp, 'bound');
    await mkdir(source);
    await writeFile(join(source, 'marker'), 'bound');
    await mkdir(join(slave.root, 'over'));
    const target = join(mnt, 'over');
    await sh(`mount --bind '${source}' '${target}'`);
    try {
      await agent.stop();
      agent = await startAgentProcess(slave.nats.url, 'feed-lost', slave.root);
      // The restart is seen at the next request: the mount then forgets all it cached.
      await waitFor('the restart noticed', async () => {
        await stat(join(mnt, 'o')).catch(() => undefined);
        return /restart|changes may have been missed|not live/.test(mounted.log());
      }, 15_000, 100);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(await readFile(join(target, 'marker'), 'utf8'), 'bound');
      assert.ok((await readFile('/proc/self/mountinfo', 'utf8')).includes(` ${target} `), 'the bind mount was detached');
    } finally {
      await sh(`umount -l '${target}'`).catch(() => undefined);
    }
  });
});


describe('without a change feed (--watch-max 0)', () => {
  let slave: BareAgent;
  let mounted: MountProcess;
  let mnt: string;

  before(async () => {
    slave = await startBareAgent({ id: 'no-feed', agentArgs: ['--watch-max', '0'] });
    mnt = join(slave.tmp, 'mnt');
    await mkdir(mnt);
    mounted = await startMountProcess(slave.nats.url, mnt, ['--agent', slave.agent.id]);
  });
  after(async () => {
    await mounted?.stop();
    await slave?.stop();
  });

  it('finds a hard link by its other names once the name it knew first is gone on the slave', async () => {
    await writeFile(join(mnt, 'first'), 'linked');
    await sh(`ln '${join(mnt, 'first')}' '${join(mnt, 'second')}'`);
    assert.equal((await stat(join(mnt, 'second'))).nlink, 2);
    await sh(`rm '${join(slave.root, 'first')}'`);
    // Nothing says so: the kernel asks again once its short timeouts ran out.
    await waitFor('one name left', async () => (await stat(join(mnt, 'second'))).nlink === 1, 10_000, 100);
    assert.equal(await readFile(join(mnt, 'second'), 'utf8'), 'linked');
  });

  it('finds a hard link by its other names once the directory of the name it knew first is replaced on the slave', async () => {
    const [old, stays] = [join(slave.root, 'replaced'), join(slave.root, 'stays')];
    await sh(`mkdir '${old}' '${stays}' && echo linked > '${old}/f' && ln '${old}/f' '${stays}/g' && ln -s target '${old}/s' && ln '${old}/s' '${stays}/t'`);
    // Looked up by the name in `replaced` first: the mount names each file by that one.
    for (const name of ['replaced/f', 'stays/g', 'replaced/s', 'stays/t']) assert.equal((await lstat(join(mnt, name))).nlink, 2);
    // Made before the old one goes, so that it cannot get the old one's inode number back.
    await sh(`mkdir '${slave.root}/new' && rm -r '${old}' && mv '${slave.root}/new' '${old}'`);
    // The mount learns the name is another directory now: the one it had, and the names in it, have no path.
    const { ino } = await stat(old);
    await waitFor('the new directory', async () => (await stat(join(mnt, 'replaced'))).ino === ino, 10_000, 100);
    assert.equal(await readFile(join(mnt, 'stays', 'g'), 'utf8'), 'linked\n');
    assert.equal(await readlink(join(mnt, 'stays', 't')), 'target');
  });
});
