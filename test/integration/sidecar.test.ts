/**
 * `splitbrain sidecar`: one slave's files, devices and commands under one shared directory, a
 * health check for compose, a cache that shows a bridged command's changes at once, and a
 * clean stop on SIGTERM.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { lstat, readlink, writeFile } from 'node:fs/promises';
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
    dir = join(slave.tmp, 'splitbrain');
    const started = await startReportingCli('sidecar', ['sidecar', slave.nats.url, '--agent', slave.agent.id, '--dir', dir,
      '--command', 'touch', '--command', 'uname', '--log-level', 'info']);
    sidecar = started.child;
    log = started.log;
  });
  after(async () => {
    if (sidecar) await stopProcess(sidecar);
    for (const sub of ['slave', 'dev']) {
      if (dir && await isMounted(join(dir, sub))) await run('fusermount', ['-uz', join(dir, sub)]);
    }
    await slave?.stop();
  });

  it('serves the slave\'s files, devices and commands under one directory, and says it is healthy', async () => {
    assert.equal((await health()).code, 0);
    assert.equal(await sh(`cat '${dir}/slave/hello.txt'`), 'from the slave\n');
    assert.ok((await lstat(join(dir, 'dev', 'null'))).isFile(), 'dev/null is a plain file on the master');
    assert.equal(await readlink(join(dir, 'bin', 'uname')), 'splitbrain-exec');
    const env = { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: join(dir, 'bridge.sock') };
    assert.equal((await run(join(dir, 'bin', 'uname'), [], { env })).stdout, (await sh('uname')));
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
    assert.equal(await isMounted(join(dir, 'slave')), false);
    assert.equal(await isMounted(join(dir, 'dev')), false);
    const after = await health();
    assert.equal(after.code, 1);
    assert.match(after.stderr, /unhealthy/);
  });
});
