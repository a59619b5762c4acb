/**
 * The same POSIX operations on a local directory and on the mount must give the same results:
 * test/fixtures/posix-ops.py prints a transcript on each, and they are compared line by line.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameLines } from '../helpers/compare.js';
import { sh } from '../helpers/processes.js';
import { startSlave, type Slave } from '../helpers/slave.js';

const SCRIPT = new URL('../../../test/fixtures/posix-ops.py', import.meta.url).pathname;

describe('POSIX conformance: local directory and mount agree', () => {
  let slave: Slave;
  let local: string;
  let onMount: string;

  before(async () => {
    slave = await startSlave();
    local = join(slave.tmp, 'local');
    await mkdir(local);
    await mkdir(join(slave.mnt, 'posix'));
    const expected = await sh(`python3 '${SCRIPT}' '${local}'`, { timeoutMs: 120_000 });
    onMount = await sh(`python3 '${SCRIPT}' '${join(slave.mnt, 'posix')}'`, { timeoutMs: 300_000 });
    local = expected;
  });
  after(async () => { await slave?.stop(); });

  it('prints the same transcript on both', () => {
    assertSameLines(onMount, local, 'transcripts (mount vs local)');
  });

  it('surfaces the errno a POSIX program expects', () => {
    const expectations: Record<string, string> = {
      'O_EXCL on existing': 'error EEXIST',
      'rename missing': 'error ENOENT',
      'mkdir existing': 'error EEXIST',
      'rmdir non-empty': 'error ENOTEMPTY',
      'rmdir a file': 'error ENOTDIR',
      'unlink a directory': 'error EISDIR',
      'open a file as a directory': 'error ENOTDIR',
      'open a directory for writing': 'error EISDIR',
      'open missing': 'error ENOENT',
      'rename dir into itself': 'error EINVAL',
      'rename dir over non-empty dir': 'error ENOTEMPTY',
      'readlink on a file': 'error EINVAL',
      'getxattr missing': 'error ENODATA',
      'getxattr on missing file': 'error ENOENT',
      'setxattr XATTR_CREATE on existing': 'error EEXIST',
      'setxattr XATTR_REPLACE on missing': 'error ENODATA',
      'removexattr missing': 'error ENODATA',
      'open for ioctl only': "['EBADF', 'EBADF', b'data']",
      'names past NAME_MAX': "['ENAMETOOLONG', 'ENAMETOOLONG', 'ENAMETOOLONG', 'ENAMETOOLONG', 'ENAMETOOLONG', 'ENAMETOOLONG', 'ENAMETOOLONG', 'ENAMETOOLONG', ['x']]",
    };
    const lines = new Map(onMount.trim().split('\n').map((l) => {
      const at = l.indexOf(': ');
      return [l.slice(0, at), l.slice(at + 2)] as const;
    }));
    for (const [step, want] of Object.entries(expectations)) assert.equal(lines.get(step), want, step);
  });

  it('leaves no .fuse_hidden files and all 5,000 entries on the slave', async () => {
    assert.equal(await sh(`find '${join(slave.root, 'posix')}' -name '.fuse_hidden*' | wc -l`), '0\n');
    assert.equal(await sh(`ls '${join(slave.root, 'posix', 'many')}' | wc -l`), '5000\n');
  });
});
