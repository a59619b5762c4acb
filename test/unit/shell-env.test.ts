/**
 * `splitbrain shell`'s pure parts: who the command runs as (sudo's caller, not root), and the
 * environment it gets (the bridge's directories on PATH as a test container has them).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandEnv } from '../../sidecar/shell.js';
import { formatCaller, parseCaller, shellCaller } from '../../sidecar/shell-namespace.js';

describe('splitbrain shell: caller and environment', () => {
  it('runs the command as the user sudo was run by, and as root only when root ran it', () => {
    if (process.geteuid?.() !== 0) return; // as root, as the suites run
    assert.deepEqual(shellCaller({ SUDO_UID: '1000', SUDO_GID: '1001' }), { uid: 1000, gid: 1001, userNamespace: false });
    assert.deepEqual(shellCaller({}), { uid: 0, gid: process.getegid?.() ?? 0, userNamespace: false });
    // Not numbers: not sudo's.
    assert.equal(shellCaller({ SUDO_UID: 'alice', SUDO_GID: '1' }).uid, 0);
  });

  it('passes the caller to the inside half exactly, and refuses what it did not write', () => {
    for (const caller of [{ uid: 1000, gid: 1000, userNamespace: true }, { uid: 0, gid: 0, userNamespace: false }]) {
      assert.deepEqual(parseCaller(formatCaller(caller)), caller);
    }
    assert.throws(() => parseCaller('1000'), /not set by splitbrain shell/);
  });

  it('puts named commands first on PATH, the slave\'s others last, and the Python hook first on PYTHONPATH', () => {
    const env = commandEnv({ PATH: '/usr/bin:/bin', PYTHONPATH: '/mine', HOME: '/home/a', SPLITBRAIN_SHELL_DIR: '/x' }, '/run/sb', true);
    assert.equal(env.PATH, '/run/sb/bin:/usr/bin:/bin:/run/sb/fallback');
    assert.equal(env.PYTHONPATH, '/run/sb/python:/mine');
    assert.equal(env.SPLITBRAIN_BRIDGE_SOCKET, '/run/sb/bridge.sock');
    assert.equal(env.HOME, '/home/a');
    assert.equal(env.SPLITBRAIN_SHELL_DIR, undefined, 'our own markers do not reach the command');
    assert.equal(commandEnv({ PYTHONPATH: '/mine' }, '/run/sb', false).PYTHONPATH, '/mine');
  });
});
