/** The Node flags a mount's server process starts with (cli/node-flags.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SERVER_NODE_FLAGS, withServerFlags } from '../../cli/node-flags.js';

describe('server node flags', () => {
  it('are added to what the parent was started with', () => {
    assert.deepEqual(withServerFlags(['--enable-source-maps']), [...SERVER_NODE_FLAGS, '--enable-source-maps']);
  });

  it('leave a flag the parent was given explicitly as it is', () => {
    assert.deepEqual(withServerFlags(['--initial-old-space-size=512']), ['--initial-old-space-size=512']);
  });
});
