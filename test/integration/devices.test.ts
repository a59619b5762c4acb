/**
 * The device mount: the slave's /dev as files whose reads and writes reach the slave's devices,
 * streaming like a serial console, never as device nodes of the master's, and only the devices
 * the agent's --dev-allow lets masters open.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hold, tryLock } from '../helpers/flocks.js';
import { run, sh, waitFor } from '../helpers/processes.js';
import { startBareAgent, startMountProcess, type BareAgent, type MountProcess } from '../helpers/slave.js';

const SCRIPT = new URL('../../../test/fixtures/device-ops.py', import.meta.url).pathname;

describe('device mount', () => {
  let slave: BareAgent;
  let devices: MountProcess;
  let dev: string;

  before(async () => {
    // The agent serves this machine's real /dev: the test's pseudo-terminals live there.
    slave = await startBareAgent({ id: 'device-slave' });
    dev = join(slave.tmp, 'dev');
    await mkdir(dev);
    devices = await startMountProcess(slave.nats.url, dev, ['--agent', slave.agent.id, '--devices']);
  });
  after(async () => {
    await devices?.stop();
    await slave?.stop();
  });

  it('shows the slave\'s /dev with no device nodes', async () => {
    const listing = await sh(`ls -l '${dev}' '${dev}/pts'`);
    assert.match(listing, /urandom/);
    assert.doesNotMatch(listing, /^[cb]/m, 'a device node reached the master');
    assert.match(listing, /^-rw-rw-rw- .* 0 .*null$/m);
  });

  it('streams /dev/urandom (the size asked for) and /dev/zero, and /dev/null swallows a write', async () => {
    assert.equal(await sh(`head -c 1M '${dev}/urandom' | wc -c`), '1048576\n');
    assert.equal(await sh(`head -c 300000 '${dev}/zero' | tr -d '\\000' | wc -c`), '0\n');
    assert.equal(await sh(`echo discarded > '${dev}/null' && echo ok`), 'ok\n');
  });

  it('locks the slave\'s device with flock(2): a slave program cannot take it while the master holds it', async () => {
    const holder = await hold(join(dev, 'null'), 'ex');
    try {
      assert.equal(await tryLock('/dev/null', 'ex'), 1, 'the slave\'s program got the device the master holds');
    } finally {
      await holder.release();
    }
    await waitFor('the device lock to go', async () => await tryLock('/dev/null', 'ex') === 0, 10_000, 100);
  });

  it('refuses a device outside --dev-allow with EACCES', async () => {
    const result = await run('sh', ['-c', `head -c 1 '${dev}/full'`]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /Permission denied/);
  });

  it('talks to a serial console: writes in order, blocking reads return what arrives, a killed reader leaves nothing behind, O_NONBLOCK gets EAGAIN', async () => {
    const result = await run('python3', [SCRIPT, dev], { timeoutMs: 120_000 });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.doesNotMatch(result.stdout, /FAIL/);
    assert.equal(result.stdout.split('\n').filter((l) => l.startsWith('ok')).length, 8, result.stdout);
  });
});

describe('device mount links', () => {
  it('shows a link to another device under the device mount\'s path, so that it leads to the slave\'s device, and no link leads out of the devices', async () => {
    const devRoot = await mkdtemp(join(tmpdir(), 'splitbrain-devroot-'));
    // A master file a hostile slave's links name: absolutely, and climbing out of the devices.
    const victim = join(devRoot, '..', `${basename(devRoot)}-victim`);
    await writeFile(victim, 'the master\'s file\n');
    await mkdir(join(devRoot, 'serial', 'by-id'), { recursive: true });
    await mkdir(join(devRoot, 'pts'));
    await symlink(join(devRoot, 'pts', '7'), join(devRoot, 'ttyBOARD')); // by the agent's --dev-root
    await symlink('/dev/ttyUSB0', join(devRoot, 'serial', 'by-id', 'usb-FTDI')); // by the slave's /dev
    await symlink('../../ttyUSB1', join(devRoot, 'serial', 'by-id', 'usb-rel')); // as udev makes them
    await symlink('/dev/pts/', join(devRoot, 'pts-dir')); // a directory, by its end
    await symlink('/dev', join(devRoot, 'dev-root'));
    await symlink('/proc/self/fd', join(devRoot, 'fd')); // outside the devices
    await symlink(victim, join(devRoot, 'abs-out'));
    await symlink(`../../../../../../../..${victim}`, join(devRoot, 'serial', 'rel-out'));
    await symlink('../dev-root/..', join(devRoot, 'serial', 'up-root')); // a `..` after a link to the root
    const slave = await startBareAgent({ id: 'device-links', agentArgs: ['--dev-root', devRoot] });
    const dev = join(slave.tmp, 'dev');
    const devRel = join(slave.tmp, 'dev-rel');
    await mkdir(dev);
    await mkdir(devRel);
    const devices = await startMountProcess(slave.nats.url, dev, ['--agent', slave.agent.id, '--devices']);
    const relative = await startMountProcess(slave.nats.url, devRel, ['--agent', slave.agent.id, '--devices', '-o', 'symlinks=relative']);
    try {
      assert.equal(await readlink(join(dev, 'ttyBOARD')), `${dev}/pts/7`);
      assert.equal(await readlink(join(dev, 'serial', 'by-id', 'usb-FTDI')), `${dev}/ttyUSB0`);
      assert.equal(await readlink(join(dev, 'serial', 'by-id', 'usb-rel')), '../../ttyUSB1');
      assert.equal(await readlink(join(dev, 'pts-dir')), `${dev}/pts/`);
      assert.equal(await readlink(join(dev, 'dev-root')), dev);
      assert.equal(await readlink(join(dev, 'serial', 'up-root')), dev);
      // Outside the devices: inside the device tree (where nothing is), never the master's files.
      // Until issue 13 these were shown as they are: /proc/self/fd, the victim's path, and a
      // climb that the master's kernel followed out of the mount.
      assert.equal(await readlink(join(dev, 'fd')), `${dev}/proc/self/fd`);
      assert.equal(await readlink(join(dev, 'abs-out')), `${dev}${victim}`);
      assert.equal(await readlink(join(dev, 'serial', 'rel-out')), `..${victim}`);
      // -o symlinks=relative: as the device mount showed them before issue 21.
      assert.equal(await readlink(join(devRel, 'ttyBOARD')), 'pts/7');
      assert.equal(await readlink(join(devRel, 'serial', 'by-id', 'usb-FTDI')), '../../ttyUSB0');
      assert.equal(await readlink(join(devRel, 'dev-root')), '.');
      assert.equal(await readlink(join(devRel, 'abs-out')), victim.slice(1));
      for (const link of ['abs-out', 'serial/rel-out', 'serial/up-root/abs-out']) {
        const result = await run('cat', [join(dev, link)]);
        assert.notEqual(result.code, 0, `${link} led to ${result.stdout}`);
        assert.match(result.stderr, /No such file or directory/);
      }
      assert.equal(await readFile(victim, 'utf8'), 'the master\'s file\n');
    } finally {
      await relative.stop();
      await devices.stop();
      await slave.stop();
      await rm(devRoot, { recursive: true, force: true });
      await rm(victim, { force: true });
    }
  });
});
