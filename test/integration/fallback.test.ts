/**
 * Issue 16: what the test lacks comes from the slave, the rest stays local. A real agent whose
 * PATH has its own `onlyslave` and `hostname`, and whose python3 finds a module `slavemod` in
 * its user site (HOME is in the export root); a real mount and bridges. With --bridge-missing,
 * `onlyslave` runs on the slave and `hostname` here; with --bridge-all, both on the slave. With
 * --python-fallback, this machine's python3 imports `slavemod` from the slave, keeps its own
 * modules (json, even when the slave has one), still runs its own sitecustomize, and says where
 * native code that does not fit came from.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBridgeProcess, type BridgeProcess } from '../helpers/bridge.js';
import { run, sh } from '../helpers/processes.js';
import { startBareAgent, startMountProcess, type BareAgent, type MountProcess } from '../helpers/slave.js';

describe('the slave for what the test lacks (--bridge-missing, --python-fallback)', () => {
  let slave: BareAgent;
  let mount: MountProcess;
  let missing: BridgeProcess;
  let all: BridgeProcess;
  let mnt: string;
  let pythonDir: string;
  let userSite: string;
  let extSuffix: string;
  const localPath = '/usr/local/bin:/usr/bin:/bin';

  before(async () => {
    const version = (await sh('python3 -c \'import sys; print("%d.%d" % sys.version_info[:2])\'')).trim();
    extSuffix = (await sh('python3 -c \'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))\'')).trim();
    slave = await startBareAgent({
      id: 'fallback-slave',
      prepare: async (root) => {
        const bin = join(root, 'slavebin');
        await mkdir(bin);
        for (const [name, says] of [['onlyslave', 'only on the slave'], ['hostname', 'slave-hostname']]) {
          await writeFile(join(bin, name), `#!/bin/sh\necho '${says}'\n`);
          await chmod(join(bin, name), 0o755);
        }
        userSite = join(root, 'home', '.local', 'lib', `python${version}`, 'site-packages');
        await mkdir(userSite, { recursive: true });
        await writeFile(join(userSite, 'slavemod.py'), 'WHO = "the slave"\n');
        await mkdir(join(userSite, 'slavepkg'));
        await writeFile(join(userSite, 'slavepkg', '__init__.py'), '');
        await writeFile(join(userSite, 'slavepkg', 'inner.py'), 'VALUE = 42\n');
        await writeFile(join(userSite, 'json.py'), 'raise RuntimeError("the slave\'s json must never be imported")\n');
        // Native code for another Python, and native code for ours that does not load.
        await writeFile(join(userSite, 'oldnative.cpython-27-x86_64-linux-gnu.so'), 'not ELF');
        await writeFile(join(userSite, `brokennative${extSuffix}`), 'not ELF either');
      },
      // The slave's PATH starts with its own commands; its HOME (whose user site python3 reads)
      // is in the export root, so the mount shows it.
      agentEnv: (root) => ({ ...process.env, PATH: `${root}/slavebin:${localPath}`, HOME: join(root, 'home') }),
    });
    mnt = join(slave.tmp, 'mnt');
    await mkdir(mnt);
    mount = await startMountProcess(slave.nats.url, mnt, ['--agent', slave.agent.id]);
    pythonDir = join(slave.tmp, 'python');
    missing = await startBridgeProcess(slave.nats.url, slave.agent.id, join(slave.tmp, 'missing.sock'), join(slave.tmp, 'missing-bin'),
      ['--bridge-missing', '--python-fallback', pythonDir, '--slave-mount', mnt]);
    all = await startBridgeProcess(slave.nats.url, slave.agent.id, join(slave.tmp, 'all.sock'), join(slave.tmp, 'all-bin'), ['--bridge-all']);
  });
  after(async () => {
    await all?.stop();
    await missing?.stop();
    await mount?.stop();
    await slave?.stop();
  });

  const shell = (script: string, env: Record<string, string>) => run('sh', ['-c', script], { env: { ...process.env, ...env }, timeoutMs: 30_000 });

  it('runs a command the test lacks on the slave, and the test\'s own locally (--bridge-missing)', async () => {
    const env = { PATH: `${localPath}:${missing.shimDir}`, SPLITBRAIN_BRIDGE_SOCKET: missing.socket };
    const out = await shell('onlyslave; hostname; command -v ls', env);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, `only on the slave\n${hostname()}\n/usr/bin/ls\n`);
    assert.match(missing.log(), /the slave's commands bridged where the test has none/);
  });

  it('runs both on the slave with --bridge-all', async () => {
    const env = { PATH: `${all.shimDir}:${localPath}`, SPLITBRAIN_BRIDGE_SOCKET: all.socket };
    const out = await shell('onlyslave; hostname', env);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'only on the slave\nslave-hostname\n');
  });

  it('imports a module the test lacks from the slave, after everything of its own (--python-fallback)', async () => {
    const code = 'import json, slavemod, slavepkg.inner; print(slavemod.WHO); print(slavemod.__file__); print(slavepkg.inner.VALUE); print(json.__file__)';
    const out = await run('python3', ['-c', code], { env: { ...process.env, PYTHONPATH: pythonDir }, timeoutMs: 30_000 });
    assert.equal(out.code, 0, out.stderr);
    const [who, file, value, json] = out.stdout.trim().split('\n');
    assert.equal(who, 'the slave');
    assert.ok(file?.startsWith(`${mnt}/`), `slavemod came through the mount: ${file}`);
    assert.equal(value, '42');
    assert.ok(!json?.startsWith(mnt), `json is this Python's own: ${json}`);
    assert.match(missing.log(), /python fallback/);
  });

  it('still runs the test\'s own sitecustomize', async () => {
    const own = join(slave.tmp, 'own-site');
    await mkdir(own, { recursive: true });
    await writeFile(join(own, 'sitecustomize.py'), 'import builtins\nbuiltins.OWN_SITECUSTOMIZE = True\n');
    const out = await run('python3', ['-c', 'import builtins, slavemod, sys; print(builtins.OWN_SITECUSTOMIZE, slavemod.WHO, any(p.endswith("/python") for p in sys.path))'],
      { env: { ...process.env, PYTHONPATH: `${pythonDir}:${own}` }, timeoutMs: 30_000 });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'True the slave False\n');
  });

  it('fails native code that does not fit this Python with ImportError, naming the slave path', async () => {
    const env = { ...process.env, PYTHONPATH: pythonDir };
    const foreign = await run('python3', ['-c', 'import oldnative'], { env, timeoutMs: 30_000 });
    assert.notEqual(foreign.code, 0);
    assert.match(foreign.stderr, /ImportError: No module named 'oldnative' for this Python: the slave's \S+\/oldnative\.cpython-27-x86_64-linux-gnu\.so is native code built for another Python/);
    const broken = await run('python3', ['-c', 'import brokennative'], { env, timeoutMs: 30_000 });
    assert.notEqual(broken.code, 0);
    assert.match(broken.stderr, new RegExp(`ImportError: .*native code from the slave's \\S+/brokennative${extSuffix.replace(/\./g, '\\.')}`));
    const missingModule = await run('python3', ['-c', 'import nowhere_at_all'], { env, timeoutMs: 30_000 });
    assert.match(missingModule.stderr, /ModuleNotFoundError: No module named 'nowhere_at_all'/);
  });
});
