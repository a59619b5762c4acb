/**
 * `splitbrain sidecar`: one slave's files, devices and commands under one shared directory, a
 * health check for compose, a cache that shows a bridged command's changes at once, and a
 * clean stop on SIGTERM.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { lstat, mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
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
    slave = await startBareAgent({ id: 'sidecar-slave' });
    await writeFile(join(slave.root, 'hello.txt'), 'from the slave\n');
    await mkdir(join(slave.root, 'dev'));
    await writeFile(join(slave.root, 'dev', 'not-a-device'), ''); // the devices mount over a non-empty dev/
    await mkdir(join(slave.root, 'var', 'log', 'app'), { recursive: true });
    await writeFile(join(slave.root, 'var', 'log', 'app', 'app.log'), 'started\n');
    dir = join(slave.tmp, 'splitbrain');
    // Configured partly from the environment, as compose configures it.
    const started = await startReportingCli('sidecar', ['sidecar', '--dir', dir, '--command', 'touch'], {
      SPLITBRAIN_SLAVE: slave.nats.url, SPLITBRAIN_AGENT: slave.agent.id, SPLITBRAIN_COMMANDS: 'uname, true',
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
    for (const name of ['uname', 'true', 'touch']) assert.equal(await readlink(join(dir, 'bin', name)), 'splitbrain-exec');
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
