/**
 * What the mount answers from what it holds, counted on the agent: a read-only open of a small
 * file it wrote or read whole (no fs.open), the remaining name of a hard link after the other is
 * unlinked (no fs.getattr), the rmdir of a directory it emptied (refused after all: reported at
 * the fsync of its parent). Each answer is what the slave says.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agentOps } from '../helpers/agent-metrics.js';
import { freePort } from '../helpers/ports.js';
import { pythonOut, run, sh, spawnCollecting, waitFor } from '../helpers/processes.js';
import { startAgentProcess, startBareAgent, startMountProcess, type AgentProcess, type BareAgent, type MountProcess } from '../helpers/slave.js';

describe('answers the mount gives from what it holds', () => {
  let slave: BareAgent;
  let agent: AgentProcess;
  let mount: MountProcess;
  let agentPort: number;
  let mnt: string;

  /** How many times the agent did `op` (any result). */
  const ops = (op: string): Promise<number> => agentOps(agentPort, op);

  before(async () => {
    slave = await startBareAgent({ id: 'local' });
    await slave.agent.stop();
    agentPort = await freePort();
    agent = await startAgentProcess(slave.nats.url, 'local', slave.root, ['--metrics', `127.0.0.1:${agentPort}`]);
    mnt = join(slave.tmp, 'mnt');
    await mkdir(mnt);
    mount = await startMountProcess(slave.nats.url, mnt, ['--agent', 'local', '-o', 'allow_other']);
    await chmod(slave.tmp, 0o755); // for the walk as another user
  });
  after(async () => {
    await mount?.stop();
    await agent?.stop();
    await slave?.stop();
  });

  it('keeps the mount\'s root found after a name is made in it (its attributes unsure, its listing cached)', async () => {
    const out = await pythonOut([
      'import os',
      `os.listdir("${mnt}")`,
      `os.mkdir("${mnt}/made-at-root")`,
      `print(os.path.isdir("${mnt}"), sorted(os.listdir("${mnt}")) == sorted(os.listdir("${slave.root}")))`,
    ].join('\n'));
    assert.equal(out, 'True True\n');
  });

  it('reads back a small file it wrote with no open on the agent, exact, and what changed it since', async () => {
    await mkdir(join(mnt, 'w'));
    const sizes = [0, 1, 4095, 4096, 65_536, 65_537];
    // Written in pieces, as programs do; read back by cat, a second open, pread inside, fstat.
    const write = [
      'import os, sys',
      'for size in map(int, sys.argv[2:]):',
      '    p = os.path.join(sys.argv[1], f"f{size}")',
      '    data = bytes((i * 7 + size) % 251 for i in range(size))',
      '    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)',
      '    for at in range(0, size, 1000): os.write(fd, data[at:at + 1000])',
      '    os.close(fd)',
    ].join('\n');
    const readBack = [
      'import os, sys, hashlib',
      'for size in map(int, sys.argv[2:]):',
      '    p = os.path.join(sys.argv[1], f"f{size}")',
      '    fd = os.open(p, os.O_RDONLY)',
      '    st = os.fstat(fd)',
      '    whole = os.read(fd, 100000)',
      '    inside = os.pread(fd, 3000, min(size, 500))',
      '    os.close(fd)',
      '    print(size, st.st_size, st.st_ino, oct(st.st_mode), hashlib.sha256(whole).hexdigest(), hashlib.sha256(inside).hexdigest())',
    ].join('\n');
    const args = sizes.map(String);
    await pythonOut(write, join(mnt, 'w'), ...args);
    const opensBefore = await ops('fs.open');
    const onMount = await pythonOut(readBack, join(mnt, 'w'), ...args);
    const opens = (await ops('fs.open')) - opensBefore;
    // Only the file past the size kept whole is opened on the agent.
    assert.equal(opens, 1, `${opens} opens on the agent`);
    assert.equal(onMount, await pythonOut(readBack, join(slave.root, 'w'), ...args), 'what the mount read is the slave\'s file, inode and mode too');

    // Changed on the slave (the feed tells the mount): the next open asks the agent and reads it.
    await sh(`printf 'more' >> '${slave.root}/w/f4095'`);
    await waitFor('the mount to see the slave\'s change', async () => (await stat(join(mnt, 'w', 'f4095'))).size === 4099, 5000);
    assert.equal(await sh(`sha256sum < '${mnt}/w/f4095'`), await sh(`sha256sum < '${slave.root}/w/f4095'`));
    // Another file renamed onto the name through the mount: its bytes, not the kept ones.
    await writeFile(join(slave.root, 'w', 'other'), 'other bytes');
    await sh(`mv '${mnt}/w/other' '${mnt}/w/f1'`);
    assert.equal(await sh(`cat '${mnt}/w/f1'`), 'other bytes');
    // Rewritten through the mount by another handle while one was open for writing.
    await pythonOut([
      'import os',
      `p = "${mnt}/w/two"`,
      'a = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644); os.write(a, b"aaaa")',
      'b = os.open(p, os.O_WRONLY); os.pwrite(b, b"B", 1); os.close(b)',
      'os.close(a)',
    ].join('\n'));
    assert.equal(await sh(`cat '${mnt}/w/two'`), 'aBaa');
    // Truncated by path through the mount.
    await sh(`truncate -s 2 '${mnt}/w/f4096'`);
    assert.equal(await sh(`wc -c < '${mnt}/w/f4096'`), '2\n');
  });

  it('opens a kept file on the agent when a request needs its handle, and refuses it with ESTALE once the name is another file', async () => {
    await writeFile(join(mnt, 'kept'), 'kept bytes');
    const out = await pythonOut([
      'import os, errno, time',
      `p = "${mnt}/kept"`,
      'fd = os.open(p, os.O_RDONLY)',
      'os.fsync(fd)', // needs the agent's handle
      'print(os.read(fd, 100))',
      'os.close(fd)',
      'fd = os.open(p, os.O_RDONLY)',
      `os.rename("${slave.root}/kept", "${slave.root}/kept.old")`,
      `open("${slave.root}/kept", "w").write("new")`,
      'time.sleep(0.5)',
      'try:',
      '    os.fsync(fd); print("synced")',
      'except OSError as e:',
      '    print(e.errno == errno.ESTALE or e.errno)',
      'os.close(fd)',
      'print(open(p).read())',
    ].join('\n'));
    assert.equal(out, "b'kept bytes'\nTrue\nnew\n");
  });

  it('opens a file for writing without waiting: its bytes land, truncated or not; refused after all (a running program), close says so', async () => {
    await writeFile(join(slave.root, 'target'), 'old contents here');
    const out = await pythonOut([
      'import os, time',
      `p = "${mnt}/target"`,
      'os.stat(p)', // known to the mount
      'fd = os.open(p, os.O_WRONLY | os.O_TRUNC); os.write(fd, b"new"); os.close(fd)',
      'print(open(p).read())',
      'fd = os.open(p, os.O_WRONLY); os.pwrite(fd, b"N", 0); os.close(fd)',
      'print(open(p).read(), os.stat(p).st_size)',
    ].join('\n'));
    assert.equal(out, 'new\nNew 3\n');
    assert.equal(await sh(`cat '${slave.root}/target'`), 'New');

    // A program running on the slave from the file: opening it for writing fails with ETXTBSY,
    // which the mount cannot know; answered at once, the close reports it.
    await sh(`cp /bin/sleep '${slave.root}/busy-bin' && stat '${mnt}/busy-bin' > /dev/null`);
    const running = spawnCollecting(join(slave.root, 'busy-bin'), ['30']);
    try {
      await waitFor('the program to run', async () => (await sh(`cat /proc/${running.child.pid}/cmdline`).catch(() => '')).includes('30'), 5000);
      const refused = await pythonOut([
        'import os',
        'try:',
        `    fd = os.open("${mnt}/busy-bin", os.O_WRONLY); print("opened")`,
        '    os.write(fd, b"x")',
        '    os.close(fd); print("closed")',
        'except OSError as e:',
        '    print(os.strerror(e.errno))',
      ].join('\n'));
      assert.match(refused, /^(opened\n)?Text file busy\n$/);
      assert.equal(await sh(`cmp /bin/sleep '${slave.root}/busy-bin' && echo same`), 'same\n');
      // Reported at the directory's next fsync too (docs/architecture.md, late refusals): taken here.
      await run('sync', [mnt]);
    } finally {
      running.child.kill('SIGKILL');
    }
  });

  it('knows the remaining name of a hard link after the other is unlinked, as the slave says', async () => {
    await mkdir(join(mnt, 'links'));
    await pythonOut([
      'import os',
      `d = "${mnt}/links"`,
      'for i in range(20):',
      '    t = f"{d}/tmp{i}"',
      '    with open(t, "w") as f: f.write("object %d" % i)',
      '    os.link(t, f"{d}/obj{i}")',
      '    os.unlink(t)',
      'fd = os.open(d, os.O_RDONLY); os.fsync(fd); os.close(fd)', // every reply in
    ].join('\n'));
    const getattrs = await ops('fs.getattr');
    const fields = 'import os, sys\nfor i in range(20):\n    s = os.lstat(f"{sys.argv[1]}/obj{i}"); print(s.st_ino, s.st_nlink, s.st_size, s.st_ctime_ns, oct(s.st_mode))';
    const seen = await run('python3', ['-c', fields, join(mnt, 'links')]);
    assert.equal(seen.code, 0, seen.stderr);
    assert.equal(await ops('fs.getattr') - getattrs, 0, 'getattrs the agent answered');
    assert.equal(seen.stdout, (await run('python3', ['-c', fields, join(slave.root, 'links')])).stdout);
    assert.match(seen.stdout, /^\d+ 1 8 /);
  });

  it('walks a tree it never listed in a few listings, each the slave\'s, and as another user only what that user may list', async () => {
    // 40 packages of 3 levels, as node_modules; one directory only root may list.
    await sh(`cd '${slave.root}' && for p in $(seq 1 40); do mkdir -p walk/nm/p$p/lib/sub walk/nm/p$p/bin; `
      + `echo $p > walk/nm/p$p/index.js; echo x > walk/nm/p$p/lib/sub/f; ln -s ../index.js walk/nm/p$p/bin/run; done; `
      + 'mkdir -m 700 walk/nm/p7/secret && touch walk/nm/p7/secret/hidden');
    const listings = await ops('fs.readdir');
    const find = (root: string, as: string[] = []) => run('sh', ['-c', `cd '${root}' && ${as.join(' ')} find walk -printf '%p %y %m %U %G %s %T@ %i %l\n' | sort`]);
    const [mounted, there] = [await find(mnt), await find(slave.root)];
    assert.equal(mounted.code, 0, mounted.stderr);
    assert.equal(mounted.stdout, there.stdout);
    const asked = (await ops('fs.readdir')) - listings;
    assert.ok(asked <= 4, `${asked} listings asked of the agent for 202 directories`);
    // Another user: the directory it may not list is reported as find reports it on the slave.
    const user = ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups'];
    const [asUser, asUserThere] = [await find(mnt, user), await find(slave.root, user)];
    assert.equal(asUser.stdout, asUserThere.stdout);
    assert.match(asUser.stderr, /secret.: Permission denied/);
  });

  it('answers another user\'s ACL probes from what it knows, though the kernel asks again after every change', async () => {
    // With allow_other the kernel checks permissions: each change in a directory makes it fetch
    // the directory's attributes again at the next check, dropping the ACLs it cached of what it
    // refreshes, and it asks for them again: a round trip each, where root's were answered here.
    await mkdir(join(mnt, 'probed'));
    await chmod(join(mnt, 'probed'), 0o1777);
    const probes = await ops('fs.getxattr');
    const out = await run('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', '/usr/bin/python3', '-c', [
      'import errno, os, sys',
      'd = os.path.join(sys.argv[1], "u", "d1"); os.makedirs(d)',
      'for _ in range(50):',
      '    f = os.path.join(d, "f")',
      '    os.close(os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)); os.stat(f); os.unlink(f)',
      'try: os.getxattr(sys.argv[1], "system.posix_acl_access")',
      'except OSError as e: print(errno.errorcode[e.errno])',
    ].join('\n'), join(mnt, 'probed')], { timeoutMs: 60_000 });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'ENODATA\n');
    const asked = (await ops('fs.getxattr')) - probes;
    assert.ok(asked <= 5, `${asked} attribute probes asked of the agent for 50 rounds`);
    assert.deepEqual(await readdir(join(slave.root, 'probed', 'u', 'd1')), []);
  });

  it('asks for a walk\'s next listings while the walk reads the ones it has, and for none when one directory is read', async () => {
    // 12 directories of 100 files: more than one listing brings (the agent lists 512 entries below one).
    await mkdir(join(mnt, 'ahead')); // made through the mount: its parent's listing knows it
    await sh(`cd '${slave.root}/ahead' && for d in $(seq 1 12); do mkdir s$d && (cd s$d && for f in $(seq 1 100); do : > f$f; done); done`);
    // The feed's report of the new directories reached the mount: the listing is not cached any more.
    await waitFor('the mount to see 12 directories in ahead', async () => (await stat(join(mnt, 'ahead'))).nlink === 14, 10_000);
    /** The agent's count of listings, once nothing has been asked for 500 ms. */
    const quiet = async (): Promise<number> => {
      let [last, since] = [await ops('fs.readdir'), Date.now()];
      await waitFor('the agent to be asked for no listing for 500 ms', async () => {
        const now = await ops('fs.readdir');
        if (now !== last) [last, since] = [now, Date.now()];
        return Date.now() - since >= 500;
      }, 20_000);
      return last;
    };
    const list = (...dirs: string[]) => pythonOut('import os, sys\nfor d in sys.argv[1:]: print(" ".join(os.listdir(d)))', ...dirs);
    const start = await quiet();
    // The listing, in the agent's order (the order of its walk below it), and one directory read.
    const order = (await list(join(mnt, 'ahead'))).trim().split(' ');
    assert.equal(order.length, 12);
    const [first, second] = order.map((d) => join(mnt, 'ahead', d));
    await list(first as string);
    const one = await quiet();
    assert.equal(one - start, 1, 'one listing for the directory and the ones below it');
    // A second directory of those it brought: a walk. The next listings come without being asked.
    await list(second as string);
    await waitFor('a listing asked for ahead of the walk', async () => (await ops('fs.readdir')) > one, 10_000);
    // The whole walk (find), with every name and size as on the slave; the listings asked ahead
    // are not asked for again.
    const walk = (root: string) => sh(`cd '${root}' && find ahead -printf '%p %y %s\\n' | sort`);
    assert.equal(await walk(mnt), await walk(slave.root));
    const asked = (await quiet()) - start;
    assert.ok(asked <= 4, `${asked} listings for 12 directories of 100 files`);
  });

  it('renames with RENAME_NOREPLACE as the slave says: EEXIST for a name it has, even one just made there, and never replaces it', async () => {
    await mkdir(join(mnt, 'noreplace'));
    await sh(`cd '${mnt}/noreplace' && echo a > a && echo b > b && echo c > c && echo m > m && echo t > t`);
    await sh(`ls '${mnt}/noreplace' > /dev/null`); // the listing cached: names it has not seen would be "no such file"
    await writeFile(join(slave.root, 'noreplace', 'late'), 'late\n'); // the master's kernel and cache may not know it yet
    const out = await pythonOut([
      'import ctypes, errno, os, sys',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'def noreplace(a, b):',
      '    if libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 1) != 0:',
      '        return errno.errorcode[ctypes.get_errno()]',
      '    return "ok"',
      'd = sys.argv[1]',
      'print(noreplace(f"{d}/a", f"{d}/b"), noreplace(f"{d}/c", f"{d}/late"), noreplace(f"{d}/c", f"{d}/new"))',
      // RENAME_EXCHANGE, the slave's to do too (rename-exchange.test.ts): a and b swap
      'print(libc.renameat2(-100, os.fsencode(f"{d}/a"), -100, os.fsencode(f"{d}/b"), 2), open(f"{d}/a").read().strip(), open(f"{d}/b").read().strip())',
    ].join('\n'), join(mnt, 'noreplace'));
    assert.equal(out, 'EEXIST EEXIST ok\n0 b a\n');
    // mv -n (renameat2 with RENAME_NOREPLACE) leaves the target as it was.
    await sh(`cd '${mnt}/noreplace' && mv -n m t`);
    const slaveHas = (name: string) => readFile(join(slave.root, 'noreplace', name), 'utf8').catch(() => 'absent');
    assert.deepEqual(
      await Promise.all(['a', 'b', 'c', 'new', 'late', 'm', 't'].map(slaveHas)),
      ['b\n', 'a\n', 'absent', 'c\n', 'late\n', 'm\n', 't\n'],
    );
  });

  it('answers names looked up in a directory it never listed from one listing; a name not there is still asked for', async () => {
    await sh(`mkdir '${slave.root}/looked' && cd '${slave.root}/looked' && for i in $(seq 1 50); do echo $i > f$i; done`);
    const [getattrs, listings] = [await ops('fs.getattr'), await ops('fs.readdir')];
    const probe = [
      'import os, sys',
      'out = []',
      'for i in range(1, int(sys.argv[2]) + 1):',
      '    try:',
      '        s = os.stat(f"{sys.argv[1]}/f{i}"); out.append(f"f{i} {s.st_ino} {s.st_size} {oct(s.st_mode)} {s.st_mtime_ns}")',
      '    except FileNotFoundError:',
      '        out.append(f"f{i} absent")',
      'print("\\n".join(out))',
    ].join('\n');
    const seen = await pythonOut(probe, join(mnt, 'looked'), '50');
    assert.equal(seen, await pythonOut(probe, join(slave.root, 'looked'), '50'));
    // The directory's listing (perhaps with its parent's, which the slave's change dropped, and
    // its attributes): not one request per name.
    const [asked, alone] = [(await ops('fs.readdir')) - listings, (await ops('fs.getattr')) - getattrs];
    assert.ok(asked >= 1 && asked <= 2 && alone <= 1, `${asked} listings and ${alone} getattrs for 50 names`);
    // Names not there: a listing the program did not read does not say so (one made on the slave
    // an instant ago may not be reported yet), the agent does.
    assert.equal(await pythonOut(probe, join(mnt, 'looked'), '60'), await pythonOut(probe, join(slave.root, 'looked'), '60'));
    await sh(`echo new > '${slave.root}/looked/f61'`);
    assert.equal(await sh(`cat '${mnt}/looked/f61'`), 'new\n', 'made on the slave just now');
    // A name made on the slave afterwards is seen (the feed drops the listing).
    await writeFile(join(slave.root, 'looked', 'late'), 'late');
    await waitFor('the mount to see a name made on the slave', async () => (await stat(join(mnt, 'looked', 'late')).catch(() => null)) !== null, 5000);
  });

  it('keeps answering "no such file" in a directory made through it after its parent\'s listing brought its names again', async () => {
    // As `git init` then `git add -A`: the mount made .git/objects, so it knows it whole; the
    // walk lists the tree from a directory it never listed, which brings .git/objects's listing
    // ahead; git then looks up each objects/XX it is about to make, and access()es .git/objects.
    // A mount of its own without allow_other: there the kernel asks the mount about access(2).
    const own = join(slave.tmp, 'mnt-access');
    await mkdir(own);
    const plain = await startMountProcess(slave.nats.url, own, ['--agent', 'local']);
    try {
      await mkdir(join(slave.root, 'outer')); // made on the slave: the mount has not listed it
      await waitFor('the mount to see outer', async () => (await stat(join(own, 'outer')).catch(() => null)) !== null, 5000);
      await mkdir(join(own, 'outer', 'made', 'objects', 'info'), { recursive: true });
      await writeFile(join(own, 'outer', 'made', 'top'), 'x');
      await sh(`ls '${own}/outer' > /dev/null`); // asked of the agent: brings the listings below ahead
      const [getattrs, accesses] = [await ops('fs.getattr'), await ops('fs.access')];
      const probe = [
        'import os, sys',
        'base = sys.argv[1]',
        'missing = sum(not os.path.exists(f"{base}/objects/{i:02x}") for i in range(64))',
        'ok = [os.access(f"{base}/objects", m) for m in (os.F_OK, os.R_OK, os.X_OK)] + [os.access(f"{base}/top", os.R_OK), os.access(f"{base}/top", os.X_OK)]',
        'print(missing, ok, os.access(f"{base}/objects/zz", os.F_OK))',
      ].join('\n');
      const out = await pythonOut(probe, join(own, 'outer', 'made'));
      const [asked, checked] = [(await ops('fs.getattr')) - getattrs, (await ops('fs.access')) - accesses];
      assert.equal(out, await pythonOut(probe, join(slave.root, 'outer', 'made')), 'as the slave\'s kernel answers');
      assert.equal(out, '64 [True, True, True, True, False] False\n');
      assert.equal(asked, 0, `${asked} getattrs for 64 names the mount knows are not there`);
      // Root's F_OK, R_OK and X_OK on what the mount knows are its own answers; X_OK on a file
      // with no execute bit (refused) is the agent's to say.
      assert.ok(checked <= 1, `${checked} access checks asked of the agent`);
    } finally {
      await plain.stop();
    }
  });

  it('lists a directory holding a mount of its own slave without looking into it', async () => {
    // The slave's `loop` shows this very mount: an lstat of it by the agent would wait for the
    // mount, which waits for the agent. Its name comes without attributes.
    await mkdir(join(slave.root, 'loop'));
    await sh(`mount --bind '${mnt}' '${slave.root}/loop'`);
    try {
      const listed = await run('timeout', ['-s', 'KILL', '20', 'python3', '-c', `import os; print(sorted(os.listdir("${mnt}"))[:0], "loop" in os.listdir("${mnt}"))`]);
      assert.equal(listed.stdout, '[] True\n', listed.stderr);
    } finally {
      await sh(`umount -l '${slave.root}/loop'`);
    }
  });

  it('removes a tree without waiting for its rmdirs; a refused one reaches the parent\'s fsync and the name stays', async () => {
    await sh(`mkdir -p '${mnt}/tree/a/b/c' '${mnt}/tree/d' && touch '${mnt}/tree/a/b/c/f' '${mnt}/tree/d/g'`);
    await sh(`rm -rf '${mnt}/tree' && sync '${mnt}'`);
    assert.equal(await stat(join(slave.root, 'tree')).then(() => true, () => false), false);

    // A directory the mount made (so knows empty), which the slave turns into a mount point:
    // the mount answers its rmdir, the slave refuses it (EBUSY).
    await mkdir(join(mnt, 'busy'));
    await sh(`sync '${mnt}' && mount -t tmpfs splitbrain-test '${slave.root}/busy'`);
    try {
      const out = await pythonOut([
        'import os',
        'try:',
        `    os.rmdir("${mnt}/busy"); print("rmdir returned")`,
        'except OSError as e:',
        '    print(os.strerror(e.errno))',
        `fd = os.open("${mnt}", os.O_RDONLY)`,
        'try:',
        '    os.fsync(fd); print("fsync returned")',
        'except OSError as e:',
        '    print(os.strerror(e.errno))',
        'os.close(fd)',
        `print(os.path.isdir("${mnt}/busy"))`,
      ].join('\n'));
      // Answered at once, the refusal comes at the fsync; else at the rmdir itself.
      assert.match(out, /^(rmdir returned\nDevice or resource busy|Device or resource busy\nfsync returned)\n/);
      assert.match(out, /True\n$/);
    } finally {
      await sh(`umount '${slave.root}/busy'`);
    }
  });
});
