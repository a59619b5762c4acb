/**
 * `splitbrain sidecar`: one slave's files, devices and commands under one shared directory, a
 * health check for compose, a cache that shows a bridged command's changes at once, and a
 * clean stop on SIGTERM.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { lstat, mkdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isMounted } from '../../mount/mount-watch.js';
import { CLI, run, sh, startReportingCli, stopProcess } from '../helpers/processes.js';
import { startBareAgent, type BareAgent } from '../helpers/slave.js';

describe('splitbrain sidecar', () => {
  let slave: BareAgent;
  let sidecar: ChildProcess;
  let dir: string;
  let log: () => string = () => '';
  const health = () => run(process.execPath, [CLI, 'health', '--dir', dir]);

  before(async () => {
    // Commits every 50 ms: a spawn then often comes while one is syncing a file just closed.
    slave = await startBareAgent({ id: 'sidecar-slave', agentArgs: ['--commit-interval', '0.05'] });
    await writeFile(join(slave.root, 'hello.txt'), 'from the slave\n');
    await mkdir(join(slave.root, 'dev'));
    await writeFile(join(slave.root, 'dev', 'not-a-device'), ''); // the devices mount over a non-empty dev/
    await mkdir(join(slave.root, 'var', 'log', 'app'), { recursive: true });
    await writeFile(join(slave.root, 'var', 'log', 'app', 'app.log'), 'started\n');
    dir = join(slave.tmp, 'splitbrain');
    // Configured partly from the environment, as compose configures it.
    const started = await startReportingCli('sidecar', ['sidecar', '--dir', dir, '--command', 'touch'], {
      SPLITBRAIN_SLAVE: slave.nats.url, SPLITBRAIN_AGENT: slave.agent.id, SPLITBRAIN_COMMANDS: 'uname, true, cat, stat, ls, env, umount',
      SPLITBRAIN_MAPS: '/var/log/app', SPLITBRAIN_LOG_LEVEL: 'info', SPLITBRAIN_EXEC_USER: 'agent',
    });
    sidecar = started.child;
    log = started.log;
  });
  after(async () => {
    if (sidecar) await stopProcess(sidecar);
    for (const sub of ['map/var/log/app', 'slave/dev', 'slave']) {
      if (dir && await isMounted(join(dir, sub))) await run('umount', ['-l', join(dir, sub)]);
    }
    await slave?.stop();
  });

  it('serves the slave\'s files, devices and commands under one directory, and says it is healthy', async () => {
    assert.equal((await health()).code, 0);
    assert.equal(await sh(`cat '${dir}/slave/hello.txt'`), 'from the slave\n');
    assert.ok((await lstat(join(dir, 'slave', 'dev', 'null'))).isFile(), 'the devices are over the slave\'s dev/, as plain files');
    assert.equal(await readFile(join(dir, 'map', 'var', 'log', 'app', 'app.log'), 'utf8'), 'started\n');
    for (const name of ['uname', 'true', 'touch', 'cat', 'stat', 'ls']) assert.equal(await readlink(join(dir, 'bin', name)), 'splitbrain-exec');
    const env = { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: join(dir, 'bridge.sock') };
    assert.equal((await run(join(dir, 'bin', 'uname'), [], { env })).stdout, (await sh('uname')));
    assert.match(log(), /"msg":"bridge serving"/);
    assert.match(log(), /"execUser":"agent"/); // from SPLITBRAIN_EXEC_USER
  });

  it('shows what a bridged command changed on the slave at once', async () => {
    const env = { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: join(dir, 'bridge.sock') };
    // Looked up first, so the mount has "no such file" cached.
    assert.equal((await run('test', ['-e', join(dir, 'slave', 'made-by-slave')])).code, 1);
    const touched = await run(join(dir, 'bin', 'touch'), ['made-by-slave'], { env, cwd: join(dir, 'slave') });
    assert.equal(touched.code, 0, touched.stderr);
    assert.equal((await run('test', ['-e', join(dir, 'slave', 'made-by-slave')])).code, 0);
    assert.ok((await lstat(join(slave.root, 'made-by-slave'))).isFile());
  });

  it('a bridged command sees what the test changed through the mount just before it', async () => {
    // The mount answers these before the slave made them; the bridge waits until they are made.
    const script = [
      'import os, subprocess, sys',
      'd, bin = sys.argv[1], sys.argv[2]',
      'os.listdir(d)',
      'for i in range(20):',
      "    sub = f'{d}/round-{i}'",
      '    os.mkdir(sub)',
      "    with open(f'{sub}/f', 'w') as f: f.write(f'round {i}\\n')",
      "    os.chmod(f'{sub}/f', 0o600)",
      "    os.symlink('f', f'{sub}/link')",
      "    with open(f'{sub}/gone', 'w'): pass",
      "    os.unlink(f'{sub}/gone')",
      "    out = subprocess.run([f'{bin}/cat', f'{sub}/link'], capture_output=True, text=True).stdout",
      "    mode = subprocess.run([f'{bin}/stat', '-c', '%a', f'{sub}/f'], capture_output=True, text=True).stdout",
      "    names = subprocess.run([f'{bin}/ls', sub], capture_output=True, text=True).stdout",
      "    assert (out, mode, names) == (f'round {i}\\n', '600\\n', 'f\\nlink\\n'), (i, out, mode, names)",
      "print('ok')",
    ].join('\n');
    const env = { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: join(dir, 'bridge.sock') };
    await mkdir(join(slave.root, 'barrier'));
    const result = await run('python3', ['-c', script, join(dir, 'slave', 'barrier'), join(dir, 'bin')], { env, cwd: join(dir, 'slave') });
    assert.equal(result.stdout, 'ok\n', result.stderr);
  });

  it('a program the test wrote through the mount and closed runs on the slave at once', async () => {
    // The agent keeps a written file open until its data is synced: open for writing, exec(2)
    // of the file failed with ETXTBSY for up to the commit interval (2 s).
    const script = [
      'import os, subprocess, sys',
      'd, bin = sys.argv[1], sys.argv[2]',
      'for i in range(20):',
      "    path = f'{d}/run-{i}.sh'",
      "    with open(path, 'w') as f: f.write(f'#!/bin/sh\\necho ran {i}\\n')",
      '    os.chmod(path, 0o755)',
      "    ran = subprocess.run([f'{bin}/env', f'./run-{i}.sh'], capture_output=True, text=True, cwd=d)",
      "    assert (ran.returncode, ran.stdout) == (0, f'ran {i}\\n'), (i, ran.returncode, ran.stdout, ran.stderr)",
      "print('ok')",
    ].join('\n');
    const env = { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: join(dir, 'bridge.sock') };
    await mkdir(join(slave.root, 'scripts'));
    const result = await run('python3', ['-c', script, join(dir, 'slave', 'scripts'), join(dir, 'bin')], { env, cwd: join(dir, 'slave') });
    assert.equal(result.stdout, 'ok\n', result.stderr);
  });

  it('a filesystem on the slave the test just wrote to through the mount can be unmounted at once', async () => {
    // The agent kept the written file's descriptor for its commit: umount failed with EBUSY.
    const vol = join(slave.root, 'vol');
    await mkdir(vol);
    assert.equal((await run('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'splitbrain-test', vol])).code, 0);
    const env = { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: join(dir, 'bridge.sock') };
    try {
      const script = [
        'import subprocess, sys',
        'slave, bin = sys.argv[1], sys.argv[2]',
        "with open(f'{slave}/vol/data', 'w') as f: f.write('kept\\n')",
        "done = subprocess.run([f'{bin}/umount', 'vol'], capture_output=True, text=True, cwd=slave)",
        "print(done.returncode, done.stderr.strip())",
      ].join('\n');
      const result = await run('python3', ['-c', script, join(dir, 'slave'), join(dir, 'bin')], { env });
      assert.equal(result.stdout, '0 \n', result.stderr);
      assert.equal(await isMounted(vol), false);
    } finally {
      if (await isMounted(vol)) await run('umount', ['-l', vol]);
    }
  });

  it('unmounts everything on SIGTERM and is then unhealthy', async () => {
    const exited = once(sidecar, 'exit');
    sidecar.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0, log());
    for (const sub of ['slave', 'slave/dev', 'map/var/log/app']) assert.equal(await isMounted(join(dir, sub)), false, sub);
    const after = await health();
    assert.equal(after.code, 1);
    assert.match(after.stderr, /unhealthy/);
  });
});

/**
 * Issue 21 in the sidecar: the test container sees `<dir>/slave` at `--slave-seen-at` (`/slave`),
 * so absolute link targets are translated by that path, on the files and on the devices. Here a
 * bind of `<dir>/slave` (with the device mount on its dev/) stands for the container's view.
 */
describe('splitbrain sidecar: symlinks at the path the test sees', () => {
  let slave: BareAgent;
  let sidecar: ChildProcess;
  let dir: string;
  let seen: string;
  let victim: string;

  before(async () => {
    slave = await startBareAgent({
      id: 'sidecar-links',
      prepare: async (root, tmp) => {
        // A master file, and its twin on the slave, which an absolute slave link names.
        victim = join(tmp, 'victim');
        await writeFile(victim, 'the master\'s own file\n');
        await mkdir(join(root, tmp), { recursive: true });
        await writeFile(join(root, victim), 'the slave\'s file\n');
        await mkdir(join(root, 'opt', 'fw', 'v2'), { recursive: true });
        await writeFile(join(root, 'opt', 'fw', 'v2', 'version'), '2.0\n');
        await symlink('/opt/fw/v2', join(root, 'opt', 'fw', 'current'));
        await symlink(victim, join(root, 'opt', 'victim'));
        await mkdir(join(root, 'dev'));
      },
    });
    dir = join(slave.tmp, 'splitbrain');
    seen = join(slave.tmp, 'seen');
    await mkdir(seen);
    const started = await startReportingCli('sidecar', ['sidecar', slave.nats.url, '--agent', slave.agent.id, '--dir', dir, '--slave-seen-at', seen], {});
    sidecar = started.child;
    await run('mount', ['--rbind', join(dir, 'slave'), seen]);
  });
  after(async () => {
    if (seen && await isMounted(seen)) await run('umount', ['-R', '-l', seen]);
    if (sidecar) await stopProcess(sidecar);
    for (const sub of ['slave/dev', 'slave']) {
      if (dir && await isMounted(join(dir, sub))) await run('umount', ['-l', join(dir, sub)]);
    }
    await slave?.stop();
  });

  it('shows the slave\'s absolute links under the path the test sees, leading into the slave', async () => {
    assert.equal(await readlink(join(seen, 'opt', 'fw', 'current')), `${seen}/opt/fw/v2`);
    assert.equal(await sh(`readlink -f '${seen}/opt/fw/current'`), `${seen}/opt/fw/v2\n`);
    assert.equal(await readFile(join(seen, 'opt', 'fw', 'current', 'version'), 'utf8'), '2.0\n');
    await sh(`echo 'written through the link' > '${seen}/opt/victim'`);
    assert.equal(await readFile(join(slave.root, victim), 'utf8'), 'written through the link\n');
    assert.equal(await readFile(victim, 'utf8'), 'the master\'s own file\n');
  });

  it('stores a link the test makes to a path it sees as the slave\'s own path, and reads it back as made', async () => {
    // `sync DIR`: answered at once, the links are on the slave once an fsync of their directory returns.
    await sh(`ln -s '${seen}/opt/fw/v2' '${seen}/opt/made' && cd '${seen}/opt' && ln -s "$PWD/fw/v2/version" made-file && sync .`);
    assert.equal(await readlink(join(slave.root, 'opt', 'made')), '/opt/fw/v2');
    assert.equal(await readlink(join(slave.root, 'opt', 'made-file')), '/opt/fw/v2/version');
    assert.equal(await readlink(join(seen, 'opt', 'made')), `${seen}/opt/fw/v2`);
    assert.equal(await readFile(join(seen, 'opt', 'made-file'), 'utf8'), '2.0\n');
  });

  it('shows device links under the path the test sees the devices at', async () => {
    // The agent's devices are this machine's /dev, where fd -> /proc/self/fd: inside the
    // device tree, where nothing is, never the test's own descriptors.
    assert.equal(await readlink(join(seen, 'dev', 'fd')), `${seen}/dev/proc/self/fd`);
    assert.equal((await run('cat', [join(seen, 'dev', 'stdin')])).code, 1);
  });
});
