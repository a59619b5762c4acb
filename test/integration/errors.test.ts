/**
 * Refusals reach programs with the errno they would see on a local disk: EROFS from a
 * read-only agent, EACCES from an agent that runs as a user without permission.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run, sh } from '../helpers/processes.js';
import { startSlave, type Slave } from '../helpers/slave.js';

const NOBODY = 65534;

async function failsWith(script: string, message: RegExp): Promise<void> {
  const result = await run('sh', ['-c', script]);
  assert.notEqual(result.code, 0, `${script} should fail`);
  assert.match(result.stderr, message, script);
}

describe('read-only agent', () => {
  let slave: Slave;
  before(async () => {
    slave = await startSlave({ agentArgs: ['--read-only'] });
    await writeFile(join(slave.root, 'existing'), 'data');
  });
  after(async () => { await slave?.stop(); });

  it('reads work', async () => {
    assert.equal(await sh(`cat '${slave.mnt}/existing'`), 'data');
  });

  it('every change fails with EROFS', async () => {
    const readOnly = /Read-only file system/;
    await failsWith(`echo x > '${slave.mnt}/new'`, readOnly);
    await failsWith(`echo x >> '${slave.mnt}/existing'`, readOnly);
    await failsWith(`mkdir '${slave.mnt}/d'`, readOnly);
    await failsWith(`rm '${slave.mnt}/existing'`, readOnly);
    await failsWith(`mv '${slave.mnt}/existing' '${slave.mnt}/moved'`, readOnly);
    await failsWith(`chmod 600 '${slave.mnt}/existing'`, readOnly);
    await failsWith(`touch '${slave.mnt}/existing'`, readOnly);
    await failsWith(`ln -s x '${slave.mnt}/link'`, readOnly);
    assert.equal(await sh(`cat '${slave.root}/existing'`), 'data');
  });
});

describe('agent without permission', () => {
  let slave: Slave;
  before(async () => {
    slave = await startSlave({
      agentSpawn: { uid: NOBODY, gid: NOBODY },
      // The export root must be reachable by the unprivileged agent.
      agentArgs: [],
    }).catch(async (err: unknown) => { throw err; });
  });
  after(async () => { await slave?.stop(); });

  it('answers EACCES where the slave user may not write or read', async () => {
    await mkdir(join(slave.root, 'locked'), { mode: 0o555 });
    await chmod(join(slave.root, 'locked'), 0o555);
    await writeFile(join(slave.root, 'secret'), 'no', { mode: 0o600 });
    await writeFile(join(slave.root, 'frozen'), 'fixed', { mode: 0o444 });
    const denied = /Permission denied/;
    await failsWith(`echo x > '${slave.mnt}/locked/new'`, denied);
    await failsWith(`cat '${slave.mnt}/secret'`, denied);
    await failsWith(`echo x >> '${slave.mnt}/frozen'`, denied);
    await failsWith(`chmod 777 '${slave.mnt}/frozen'`, /Operation not permitted/);
  });
});
