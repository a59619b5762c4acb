/**
 * Several users on one slave (issue 13): test/fixtures/identity-ops.py, run as root, acts as
 * users 1000 and 1001 in child processes (setgroups, setgid, setuid) on a local directory and on
 * a mount with allow_other; the local kernel is the oracle for every owner, mode and errno.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameLines } from '../helpers/compare.js';
import { sh } from '../helpers/processes.js';
import { startSlave, type Slave } from '../helpers/slave.js';

const SCRIPT = new URL('../../../test/fixtures/identity-ops.py', import.meta.url).pathname;

describe('callers: several users on a local directory and on the mount agree', () => {
  let slave: Slave;
  let expected: string;
  let onMount: string;

  before(async () => {
    slave = await startSlave({ mountArgs: ['-o', 'allow_other'] });
    const local = join(slave.tmp, 'local');
    await mkdir(local, { mode: 0o755 });
    expected = await sh(`python3 '${SCRIPT}' '${local}'`, { timeoutMs: 60_000 });
    onMount = await sh(`python3 '${SCRIPT}' '${slave.mnt}'`, { timeoutMs: 120_000 });
  });
  after(async () => { await slave?.stop(); });

  it('prints the same transcript on both', () => {
    assertSameLines(onMount, expected, 'transcripts (mount vs local)');
  });

  it('gives what a caller creates to the caller, and refuses as the slave would', () => {
    const lines = new Map(onMount.split('\n').map((line) => {
      const at = line.indexOf(']: ');
      return [line.slice(0, at + 1), line.slice(at + 3)] as const;
    }));
    // Not only equal to the local run: right (a transcript of failures would also be equal).
    assert.match(lines.get('create file [1000]') ?? '', /uid=1000 gid=1000/);
    assert.match(lines.get('bind socket [1000]') ?? '', /^type=140000 .*uid=1000 gid=1000/);
    assert.match(lines.get('mkdir in setgid dir (member) [1000]') ?? '', /perm=2755 uid=1000 gid=2000/);
    assert.equal(lines.get('chmod another\'s file [1001]'), 'error EPERM');
    assert.equal(lines.get('chown give away [1000]'), 'error EPERM');
    assert.equal(lines.get('unlink another\'s file in sticky dir [1001]'), 'error EPERM');
    assert.equal(lines.get('stat in another\'s private dir [1001]'), 'error EACCES');
    assert.equal(lines.get('create in etc [1000]'), 'error EACCES');
    assert.equal(lines.get('touch another\'s read-only file [1001]'), 'error EACCES');
    assert.equal(lines.get('set times of another\'s file [1001]'), 'error EPERM');
  });
});
