/**
 * renameat2(2)'s RENAME_EXCHANGE through the mount: the two names swap files (a file and a
 * directory too), atomically on the slave, and what the mount knew under either name (cached
 * attributes, listings, open files and their writes) follows its file. The same script runs on a
 * local directory and on the mount, and the slave's tree is read after.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pythonOut } from '../helpers/processes.js';
import { removeTree, startSlave, type Slave } from '../helpers/slave.js';

const SCRIPT = [
  'import ctypes, errno, os, sys',
  'libc = ctypes.CDLL(None, use_errno=True)',
  'AT_FDCWD, NOREPLACE, EXCHANGE = -100, 1, 2',
  'def exchange(a, b, flags=EXCHANGE):',
  '    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags) != 0:',
  '        return errno.errorcode[ctypes.get_errno()]',
  '    return "ok"',
  'os.chdir(sys.argv[1])',
  'open("a", "w").write("first")',
  'open("b", "w").write("the second")',
  'ino = {n: os.stat(n).st_ino for n in "ab"}',
  'assert (open("a").read(), open("b").read()) == ("first", "the second")', // kept by the mount, whole
  'held = open("a", "r+")', // open before: its writes follow its file to the name b
  'print(exchange("a", "b"), open("a").read(), open("b").read(), os.stat("a").st_ino == ino["b"], os.stat("b").st_ino == ino["a"])',
  'held.seek(0); held.write("FIRST"); held.close()',
  'print(open("a").read(), open("b").read())',
  // a directory and a file swap; the directory's child moves with it
  'os.mkdir("d"); open("d/child", "w").write("kid"); os.listdir("d"); os.stat("d/child"); open("d/child").read()',
  'print(exchange("d", "a"), os.path.isdir("a"), os.listdir("a"), open("a/child").read(), open("d").read(), os.path.exists("d/child"))',
  // across directories
  'os.mkdir("x"); open("x/y", "w").write("why")',
  'print(exchange("x/y", "b"), open("x/y").read(), open("b").read(), sorted(os.listdir(".")), os.listdir("x"))',
  // refusals: a missing name, both flags
  'print(exchange("b", "missing"), exchange("missing", "b"), exchange("a", "b", EXCHANGE | NOREPLACE))',
  'print(sorted(os.listdir(".")), sorted((n, os.path.isdir(n)) for n in os.listdir(".")))',
].join('\n');

describe('renameat2 RENAME_EXCHANGE through the mount', () => {
  let slave: Slave;
  let local: string;

  before(async () => {
    slave = await startSlave({ id: 'exchange' });
    local = await mkdtemp(join(tmpdir(), 'splitbrain-exchange-local-'));
  });
  after(async () => {
    await slave?.stop();
    if (local) await removeTree(local);
  });

  it('swaps two files, a file and a directory, and names in two directories, as a local disk does', async () => {
    const expected = await pythonOut(SCRIPT, local);
    assert.match(expected, /^ok the second first True True\n/);
    assert.equal(await pythonOut(SCRIPT, slave.mnt), expected);
    // The slave's own tree agrees.
    assert.equal(await readFile(join(slave.root, 'a', 'child'), 'utf8'), 'kid');
    assert.equal(await readFile(join(slave.root, 'd'), 'utf8'), 'the second');
    assert.equal(await readFile(join(slave.root, 'x', 'y'), 'utf8'), 'FIRST');
    assert.equal(await readFile(join(slave.root, 'b'), 'utf8'), 'why');
  });
});
