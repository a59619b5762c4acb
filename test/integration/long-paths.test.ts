/**
 * Paths longer than one system call takes. A program that works relative to a deep directory
 * (`cd` down a chain, pjdfstest's NN/03.t tests, a build in a deep tree) names files whose path
 * below the mount, and more so on the slave under the export root, passes PATH_MAX: the agent
 * names them through directories' descriptors (agent/host-path.ts), its change watcher names
 * such directories too, so a slave-side change deep down reaches the mount, and a bridged command
 * starts there. (Past what a request carries, LONG_PATH_MAX, a path is ENAMETOOLONG:
 * errors.test.ts.)
 */
import assert from 'node:assert/strict';
import { mkdtemp, realpath } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, pythonOut, run } from '../helpers/processes.js';
import { removeTree, startSlave, type Slave } from '../helpers/slave.js';

/** Python that goes DEPTH directories of NAME down from argv[1] (made if missing), by chdir. */
const PRELUDE = [
  'import errno, os, stat, sys, time',
  'NAME = "d" * 200',
  'def down(base, depth, make=True):',
  '    os.chdir(base)',
  '    for _ in range(depth):',
  '        if make and not os.path.isdir(NAME): os.mkdir(NAME)',
  '        os.chdir(NAME)',
  'def errname(f):',
  '    try:',
  '        f(); return "ok"',
  '    except OSError as e:',
  '        return errno.errorcode[e.errno]',
].join('\n');
const DEPTH = 25; // 5,025 bytes below the base: more than PATH_MAX below the mount, and on the slave

const py = (script: string, ...args: string[]) => pythonOut(`${PRELUDE}\n${script}`, ...args);

describe('paths longer than PATH_MAX through the mount', () => {
  let slave: Slave;
  let local: string;

  before(async () => {
    slave = await startSlave({ id: 'longpaths' });
    local = await mkdtemp(join(tmpdir(), 'splitbrain-long-local-'));
  });
  after(async () => {
    await slave?.stop();
    if (local) await removeTree(local);
  });

  it('makes, reads, changes and removes files below a directory deeper than PATH_MAX, as a local disk does', async () => {
    const steps = [
      'down(sys.argv[1], int(sys.argv[2]))',
      'assert len(os.getcwd()) > 4096',
      'with open("f", "wb") as f: f.write(b"deep " * 2000)',
      'os.rename("f", "g"); os.symlink("g", "s"); os.link("g", "h"); os.chmod("g", 0o640)',
      'os.mkfifo("p"); os.mkdir("sub"); os.rmdir("sub")',
      'os.setxattr("g", "user.k", b"v")',
      'os.truncate("h", 6000)', // g's other name
      'os.utime("g", ns=(1_000_000_000_000_000_123, 1_000_000_000_000_000_456))',
      's = os.stat("g")',
      'print(sorted(os.listdir(".")), oct(s.st_mode), s.st_size, s.st_nlink, s.st_mtime_ns, os.readlink("s"),',
      '      os.getxattr("g", "user.k"), stat.S_ISFIFO(os.lstat("p").st_mode), open("s", "rb").read(5))',
      // A path of 4,000 bytes relative to a directory 5 levels up
      'os.chdir("/".join([".."] * 5))',
      'print(os.stat("/".join([NAME] * 5) + "/g").st_size)',
    ].join('\n');
    const through = await py(steps, slave.mnt, String(DEPTH));
    assert.equal(through, await py(steps, local, String(DEPTH)));
    assert.match(through, /^\['g', 'h', 'p', 's'\] 0o100640 6000 2 1000000000000000456 g b'v' True b'deep '\n6000\n$/);
    // The slave's own tree holds it (read there by chdir too).
    const there = await py('down(sys.argv[1], int(sys.argv[2]), False)\nprint(sorted(os.listdir(".")), open("g", "rb").read(10))', slave.root, String(DEPTH));
    assert.equal(there, "['g', 'h', 'p', 's'] b'deep deep '\n");
    // rm -rf walks by descriptors: every name goes, on the slave too.
    await run('rm', ['-rf', join(slave.mnt, 'd'.repeat(200))], { timeoutMs: 60_000 });
    assert.equal(await py('print(os.listdir(sys.argv[1]))', slave.root), '[]\n');
  });

  it('sees what the slave changes in a directory deeper than PATH_MAX', async () => {
    // The mount lists the deep directory (and so caches it), then the slave adds a file and a directory there.
    await py('down(sys.argv[1], int(sys.argv[2])); print(os.listdir("."))', slave.mnt, String(DEPTH));
    await py('down(sys.argv[1], int(sys.argv[2]), False); open("made-there", "w").write("x"); os.mkdir("dir-there")', slave.root, String(DEPTH));
    const seen = await py([
      'down(sys.argv[1], int(sys.argv[2]), False)',
      'for _ in range(500):',
      '    names = sorted(os.listdir("."))',
      '    if names == ["dir-there", "made-there"]: break',
      '    time.sleep(0.01)',
      'print(names)',
    ].join('\n'), slave.mnt, String(DEPTH));
    assert.equal(seen, "['dir-there', 'made-there']\n");
    await run('rm', ['-rf', join(slave.mnt, 'd'.repeat(200))], { timeoutMs: 60_000 });
  });

  it('starts a command in a directory deeper than PATH_MAX, on pipes and on a terminal', async () => {
    await py('down(sys.argv[1], int(sys.argv[2])); open("here", "w").write("deep\\n")', slave.root, String(DEPTH));
    const cwd = `/${Array.from({ length: DEPTH }, () => 'd'.repeat(200)).join('/')}`;
    for (const terminal of [[], ['--tty']]) {
      const result = await run(process.execPath, [CLI, 'exec', slave.nats.url, '--agent', slave.agent.id, ...terminal, '-C', cwd, '--',
        'sh', '-c', 'cat here; pwd -P | wc -c'], { timeoutMs: 60_000 });
      assert.equal(result.code, 0, result.stderr);
      // The slave's own path of the directory: its export root, then the chain.
      assert.equal(result.stdout.replaceAll('\r', ''), `deep\n${Buffer.byteLength((await realpath(slave.root)) + cwd) + 1}\n`);
    }
    await run('rm', ['-rf', join(slave.root, 'd'.repeat(200))], { timeoutMs: 60_000 });
  });
});
