/**
 * close(2) of a file opened read-only asks the mount nothing: the kernel is told at open that
 * there is no flush to send (FOPEN_NOFLUSH), as the close has nothing to wait for or report. A
 * file opened for writing, or with O_TRUNC, still gets its flush, counted in the mount's debug
 * log of kernel requests; what is read and written is the slave's either way.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pythonOut, waitFor } from '../helpers/processes.js';
import { startBareAgent, startMountProcess, type BareAgent, type MountProcess } from '../helpers/slave.js';

describe('the close of a file opened read-only', () => {
  let slave: BareAgent;
  let mount: MountProcess;
  let mnt: string;
  /** Kernel flush requests the mount answered so far (its debug log has a line per request). */
  const flushes = (): number => (mount.log().match(/"op":"flush"/g) ?? []).length;

  before(async () => {
    slave = await startBareAgent({ id: 'read-only-close' });
    await writeFile(join(slave.root, 'read-me'), 'from the slave\n');
    mnt = join(slave.tmp, 'mnt');
    await mkdir(mnt);
    mount = await startMountProcess(slave.nats.url, mnt, ['--agent', 'read-only-close', '--log-level', 'debug']);
  });
  after(async () => {
    await mount?.stop();
    await slave?.stop();
  });

  it('sends no flush; one opened for writing or with O_TRUNC still does, and its data arrives', async () => {
    const before = flushes();
    const read = await pythonOut([
      'import os, sys',
      'path = sys.argv[1]',
      'seen = set()',
      'for _ in range(20):',
      '    fd = os.open(path, os.O_RDONLY)',
      '    seen.add(os.read(fd, 100))',
      '    os.close(fd)',
      'print(seen == {b"from the slave\\n"})',
    ].join('\n'), join(mnt, 'read-me'));
    assert.equal(read, 'True\n');
    assert.equal(flushes(), before, 'no flush for twenty read-only closes');
    const written = await pythonOut([
      'import os, sys',
      'd = sys.argv[1]',
      'for i in range(5):',
      '    fd = os.open(f"{d}/w{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)',
      '    os.write(fd, f"written {i}\\n".encode())',
      '    os.close(fd)',
      'fd = os.open(f"{d}/read-me", os.O_RDWR)',
      'os.read(fd, 4)',
      'os.close(fd)',
      'fd = os.open(f"{d}/w4", os.O_RDONLY | os.O_TRUNC)',
      'os.close(fd)',
      'print("done")',
    ].join('\n'), mnt);
    assert.equal(written, 'done\n');
    // Five files written, one opened for reading and writing, one truncated read-only: seven flushes.
    await waitFor('seven flushes logged', () => flushes() - before >= 7, 5000, 20);
    assert.equal(flushes() - before, 7);
    for (let i = 0; i < 4; i++) assert.equal(await readFile(join(slave.root, `w${i}`), 'utf8'), `written ${i}\n`);
    assert.equal(await readFile(join(slave.root, 'w4'), 'utf8'), '', 'truncated by its read-only open');
  });
});
