/** The Node flags a mount's server process and an agent start with (cli/node-flags.ts). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { AGENT_NODE_FLAGS, MOUNT_NODE_FLAGS, withMountFlags } from '../../cli/node-flags.js';

describe('server node flags', () => {
  it('are added to what the parent was started with', () => {
    assert.deepEqual(withMountFlags(['--enable-source-maps']), [...MOUNT_NODE_FLAGS, '--enable-source-maps']);
  });

  it('leave a flag the parent was given explicitly as it is', () => {
    assert.deepEqual(withMountFlags(['--initial-old-space-size=512']), ['--interrupt-budget=16896', '--initial-old-space-size=512']);
  });

  it('are what the agent image, the systemd unit, the demo and the sidecar image start Node with', () => {
    const repo = new URL('../../../', import.meta.url);
    const starts: [string, RegExp, readonly string[]][] = [
      ['compose/agent.Dockerfile', /^ENTRYPOINT/, AGENT_NODE_FLAGS],
      ['compose/splitbrain-agent.service', /^ExecStart=/, AGENT_NODE_FLAGS],
      ['scripts/demo-loopback.sh', /main\.js agent /, AGENT_NODE_FLAGS],
      ['compose/sidecar.Dockerfile', /^ENTRYPOINT/, MOUNT_NODE_FLAGS],
    ];
    for (const [file, starter, flags] of starts) {
      const text = readFileSync(new URL(file, repo), 'utf8');
      const start = text.split('\n').find((line) => starter.test(line));
      assert.ok(start, `${file} starts something`);
      for (const flag of flags) assert.ok(start.includes(flag), `${flag} in ${file}: ${start}`);
    }
  });
});
