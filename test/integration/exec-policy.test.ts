/**
 * The agent's process policy, independent of the bus: --no-exec refuses every process and
 * --exec-allow only lets matching commands run; a refusal is EACCES, which the master reports
 * as exit status 126 with the reason, and the hello says which policy is in force.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CLI, run } from '../helpers/processes.js';
import { startBareAgent } from '../helpers/slave.js';

const exec = (url: string, id: string, argv: string[]) => run(process.execPath, [CLI, 'exec', url, '--agent', id, '--', ...argv]);

describe('exec policy', () => {
  it('--no-exec: every process is refused with 126, and the hello says so', async () => {
    const slave = await startBareAgent({ id: 'no-exec', agentArgs: ['--no-exec'] });
    try {
      const refused = await exec(slave.nats.url, 'no-exec', ['true']);
      assert.equal(refused.code, 126);
      assert.match(refused.stderr, /true: not allowed by the agent's exec policy/);
      const hello = JSON.parse((await run(process.execPath, [CLI, 'hello', slave.nats.url])).stdout) as { policy: { exec: unknown } };
      assert.equal(hello.policy.exec, 'none');
    } finally {
      await slave.stop();
    }
  });

  it('--exec-allow: only commands matching a name glob or a path glob run', async () => {
    const slave = await startBareAgent({ id: 'some-exec', agentArgs: ['--exec-allow', 'true', '--exec-allow', '/usr/bin/ec*'] });
    try {
      assert.equal((await exec(slave.nats.url, 'some-exec', ['true'])).code, 0);
      const echoed = await exec(slave.nats.url, 'some-exec', ['echo', 'allowed']);
      assert.equal(echoed.code, 0, echoed.stderr);
      assert.equal(echoed.stdout, 'allowed\n');
      const refused = await exec(slave.nats.url, 'some-exec', ['ls', '/']);
      assert.equal(refused.code, 126);
      assert.match(refused.stderr, /ls: not allowed by the agent's exec policy/);
      const hello = JSON.parse((await run(process.execPath, [CLI, 'hello', slave.nats.url])).stdout) as { policy: { exec: unknown } };
      assert.deepEqual(hello.policy.exec, ['true', '/usr/bin/ec*']);
    } finally {
      await slave.stop();
    }
  });

  it('refuses --no-exec together with --exec-allow', async () => {
    const both = await run(process.execPath, [CLI, 'agent', '--no-exec', '--exec-allow', 'true']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /exclude each other/);
  });
});
