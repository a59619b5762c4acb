/** The Node flags a mount's server process and an agent start with (cli/node-flags.ts). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { SERVER_NODE_FLAGS, withServerFlags } from '../../cli/node-flags.js';

describe('server node flags', () => {
  it('are added to what the parent was started with', () => {
    assert.deepEqual(withServerFlags(['--enable-source-maps']), [...SERVER_NODE_FLAGS, '--enable-source-maps']);
  });

  it('leave a flag the parent was given explicitly as it is', () => {
    assert.deepEqual(withServerFlags(['--initial-old-space-size=512']), ['--initial-old-space-size=512']);
  });

  it('are what the agent image, the systemd unit and the sidecar image start Node with', () => {
    const repo = new URL('../../../', import.meta.url);
    for (const file of ['compose/agent.Dockerfile', 'compose/splitbrain-agent.service', 'compose/sidecar.Dockerfile']) {
      const text = readFileSync(new URL(file, repo), 'utf8');
      const start = text.split('\n').find((line) => /^(ENTRYPOINT|ExecStart=)/.test(line));
      assert.ok(start, `${file} starts something`);
      for (const flag of SERVER_NODE_FLAGS) assert.ok(start.includes(flag), `${flag} in ${file}: ${start}`);
    }
  });
});
