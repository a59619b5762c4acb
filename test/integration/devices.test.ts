/**
 * The device mount: the slave's /dev as files whose reads and writes reach the slave's devices,
 * streaming like a serial console, never as device nodes of the master's, and only the devices
 * the agent's --dev-allow lets masters open.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run, sh } from '../helpers/processes.js';
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
