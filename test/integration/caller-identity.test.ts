/**
 * Whose the slave's files become, and what masters may make there (issue 13): device nodes
 * are the agent's policy, sockets made with bind() are sockets on the slave, and a non-root
 * agent acts as itself and says so. Several users' rules are in test/conformance/identity.
 */
import assert from 'node:assert/strict';
import { lstatSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, run, sh } from '../helpers/processes.js';
import { startBareAgent, startMountProcess, startSlave, type BareAgent, type MountProcess, type Slave } from '../helpers/slave.js';

/** os.mknod through python, as `uid` (0: root): the errno name, or OK. */
async function mknod(path: string, kind: 'chr' | 'fifo', uid = 0): Promise<string> {
  const mode = kind === 'chr' ? 'stat.S_IFCHR | 0o600, os.makedev(1, 3)' : 'stat.S_IFIFO | 0o600';
  const become = uid === 0 ? '' : `os.setgroups([]); os.setgid(${uid}); os.setuid(${uid}); `;
  return sh(`python3 -c "import errno, os, stat
try:
    ${become}os.mknod('${path}', ${mode}); print('OK')
except OSError as e:
    print(errno.errorcode[e.errno])"`);
}

describe('device nodes are the agent\'s policy', () => {
  let plain: Slave;
  let allowing: Slave;

  before(async () => {
    plain = await startSlave({ mountArgs: ['-o', 'allow_other'] });
    allowing = await startSlave({ agentArgs: ['--allow-device-nodes'], mountArgs: ['-o', 'allow_other'] });
    await chmod(plain.mnt, 0o1777);
    await chmod(allowing.mnt, 0o1777);
  });
  after(async () => {
    await plain?.stop();
    await allowing?.stop();
  });

  it('refuses a device node with EPERM, even to root, and makes FIFOs', async () => {
    assert.equal((await mknod(join(plain.mnt, 'disk'), 'chr')).trim(), 'EPERM');
    assert.throws(() => lstatSync(join(plain.root, 'disk')), /ENOENT/);
    assert.equal((await mknod(join(plain.mnt, 'fifo'), 'fifo')).trim(), 'OK');
    assert.ok(lstatSync(join(plain.root, 'fifo')).isFIFO());
    const hello = JSON.parse((await run(process.execPath, [CLI, 'hello', plain.nats.url])).stdout) as { policy: { deviceNodes?: boolean } };
    assert.equal(hello.policy.deviceNodes, false);
  });

  it('makes one for root with --allow-device-nodes, never for another user', async () => {
    assert.equal((await mknod(join(allowing.mnt, 'null'), 'chr')).trim(), 'OK');
    const made = lstatSync(join(allowing.root, 'null'));
    assert.ok(made.isCharacterDevice());
    assert.equal(made.rdev, lstatSync('/dev/null').rdev);
    assert.equal((await mknod(join(allowing.mnt, 'null2'), 'chr', 1000)).trim(), 'EPERM');
    const status = (await run(process.execPath, [CLI, 'status', allowing.nats.url])).stdout;
    assert.match(status, /rw as=caller exec=all dev=\S+ mknod=yes/);
  });

  it('makes a socket bound under the mount a socket on the slave, which connects', async () => {
    const out = await sh(`python3 -c "import os, socket
os.setgroups([]); os.setgid(1000); os.setuid(1000)
s = socket.socket(socket.AF_UNIX); s.bind('${plain.mnt}/sock'); s.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect('${plain.mnt}/sock'); print('connected')"`);
    assert.equal(out.trim(), 'connected');
    const made = lstatSync(join(plain.root, 'sock'));
    assert.ok(made.isSocket());
    assert.deepEqual([made.uid, made.gid], [1000, 1000]);
  });
});

describe('the device mount, for other users', () => {
  let bare: BareAgent;
  let devices: MountProcess;
  let devRoot: string;

  before(async () => {
    // Real device nodes with a lab's modes: null root's alone, zero for group 2000.
    devRoot = await mkdtemp(join(tmpdir(), 'splitbrain-devroot-'));
    await sh(`chmod 755 '${devRoot}' && mknod -m 600 '${devRoot}/null' c 1 3 `
      + `&& mknod -m 660 '${devRoot}/zero' c 1 5 && chgrp 2000 '${devRoot}/zero'`);
    bare = await startBareAgent({ agentArgs: ['--dev-root', devRoot, '--dev-allow', 'null', '--dev-allow', 'zero'] });
    const at = join(bare.tmp, 'dev');
    await mkdir(at);
    devices = await startMountProcess(bare.nats.url, at, ['--agent', bare.agent.id, '--devices', '-o', 'allow_other']);
  });
  after(async () => {
    await devices?.stop();
    await bare?.stop();
    await rm(devRoot, { recursive: true, force: true });
  });

  it('opens a device for a user its modes and groups allow, and refuses one they do not', async () => {
    const as = (ids: string, script: string) => run('setpriv', [...ids.split(' '), 'sh', '-c', script]);
    const member = await as('--reuid=1000 --regid=1000 --groups=2000', `head -c 5 '${devices.mountPath}/zero' | wc -c`);
    assert.equal(member.stdout.trim(), '5', member.stderr);
    const other = await as('--reuid=1001 --regid=1001 --clear-groups', `head -c 5 '${devices.mountPath}/zero'`);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /Permission denied/);
    const notOwner = await as('--reuid=1000 --regid=1000 --groups=2000', `echo x > '${devices.mountPath}/null'`);
    assert.match(notOwner.stderr, /Permission denied/);
    assert.equal((await sh(`echo x > '${devices.mountPath}/null' && echo root`)).trim(), 'root');
  });
});

describe('a non-root mounter', () => {
  it('is told that -o allow_other needs user_allow_other in /etc/fuse.conf', async (t) => {
    const conf = (() => { try { return readFileSync('/etc/fuse.conf', 'utf8'); } catch { return ''; } })();
    if (/^\s*user_allow_other\s*$/m.test(conf)) {
      t.skip('this machine\'s /etc/fuse.conf allows it');
      return;
    }
    const bare = await startBareAgent();
    try {
      const mnt = join(bare.tmp, 'user-mnt');
      await mkdir(mnt);
      await chown(mnt, 1000, 1000);
      const result = await run('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', process.execPath, CLI,
        'mount', bare.nats.url, mnt, '-o', 'allow_other'], { timeoutMs: 30_000 });
      assert.equal(result.code, 1, result.stdout + result.stderr);
      assert.match(result.stderr, /-o allow_other: a non-root user .* \/etc\/fuse\.conf has the line 'user_allow_other'/);
    } finally {
      await bare.stop();
    }
  });
});

describe('a non-root agent acts as itself', () => {
  let bare: BareAgent;
  let mount: MountProcess;

  before(async () => {
    bare = await startBareAgent({
      agentSpawn: { uid: 1000, gid: 1000 },
      prepare: async (root) => {
        await chown(root, 1000, 1000);
        await chmod(root, 0o777);
      },
    });
    const mnt = join(bare.tmp, 'mnt');
    await mkdir(mnt);
    mount = await startMountProcess(bare.nats.url, mnt, ['--agent', bare.agent.id, '-o', 'allow_other']);
  });
  after(async () => {
    await mount?.stop();
    await bare?.stop();
  });

  it('says so in hello and status, and what anyone creates is the agent user\'s', async () => {
    const identity = await run(process.execPath, [CLI, 'hello', bare.nats.url, '--field', 'identity']);
    assert.equal(identity.stdout.trim(), 'agent');
    assert.match((await run(process.execPath, [CLI, 'status', bare.nats.url])).stdout, / as=agent /);
    await sh(`setpriv --reuid=1001 --regid=1001 --clear-groups sh -c 'echo hi > ${mount.mountPath}/by-1001'`);
    await sh(`echo hi > ${mount.mountPath}/by-root`);
    for (const name of ['by-1001', 'by-root']) {
      const st = lstatSync(join(bare.root, name));
      assert.deepEqual([st.uid, st.gid], [1000, 1000], name);
    }
  });
});
