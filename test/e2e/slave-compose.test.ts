/**
 * compose/slave.yml: the agent in a container serving its host: the host's files (its / at
 * /host), and processes in the host's namespaces, so a command sees the host's mounts, hostname
 * and working directory. NATS listens on a loopback port of the host only.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../helpers/ports.js';
import { makeTestPki, plainTcpAnswer } from '../helpers/pki.js';
import { CLI, run, waitFor } from '../helpers/processes.js';
import { startMountProcess, type MountProcess } from '../helpers/slave.js';

const SLAVE_FILE = new URL('../../../compose/slave.yml', import.meta.url).pathname;
const SECURE_FILE = new URL('../../../compose/slave-secure.yml', import.meta.url).pathname;
const TAG = process.env.TAG ?? 'local';

/**
 * This machine only: Docker 20.10's `privileged` asks for every capability, and this machine
 * lacks CAP_SYS_RESOURCE, so the agent gets the others explicitly. Its init (PID 1) also
 * refuses to be inspected from a container, so processes enter the namespaces of a host process
 * the test starts (HOST_PID) instead.
 */
const OVERRIDE = `services:
  agent:
    privileged: false
    cap_add: [CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP, LINUX_IMMUTABLE,
              NET_ADMIN, NET_RAW, IPC_LOCK, IPC_OWNER, SYS_RAWIO, SYS_CHROOT, SYS_PTRACE, SYS_ADMIN, SYS_NICE, MKNOD, SETFCAP]
    security_opt: ["seccomp:unconfined", "apparmor:unconfined"]
    device_cgroup_rules: ["c *:* rmw", "b *:* rmw"]
`;

describe('compose/slave.yml: an agent container serving its host', () => {
  const project = `sbslave${randomBytes(3).toString('hex')}`;
  let tmp: string;
  let hostProcess: ChildProcess;
  let url: string;
  let env: NodeJS.ProcessEnv;
  let mount: MountProcess | undefined;
  const compose = (...args: string[]) => run('docker-compose', ['-p', project, '-f', SLAVE_FILE, '-f', join(tmp, 'override.yml'), ...args], { env, timeoutMs: 120_000 });

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'splitbrain-slave-compose-'));
    await writeFile(join(tmp, 'override.yml'), OVERRIDE);
    await writeFile(join(tmp, 'on-the-host.txt'), 'written on the host\n');
    hostProcess = spawn('sleep', ['600'], { stdio: 'ignore' });
    const port = await freePort();
    url = `nats://127.0.0.1:${port}`;
    env = {
      ...process.env, NATS_IMAGE: `splitbrain/nats:${TAG}`, SPLITBRAIN_IMAGE: `splitbrain/agent:${TAG}`,
      NATS_LISTEN: '127.0.0.1', NATS_PORT: String(port), AGENT_ID: 'lab-host', HOST_PID: String(hostProcess.pid),
    };
    const up = await compose('up', '-d');
    assert.equal(up.code, 0, up.stderr);
    await waitFor('the agent', async () => (await run(process.execPath, [CLI, 'hello', url, '--field', 'agentId'])).stdout === 'lab-host\n', 60_000, 250);
  });

  after(async () => {
    await mount?.stop();
    if (tmp) {
      await compose('down', '-v');
      await rm(tmp, { recursive: true, force: true });
    }
    hostProcess?.kill('SIGKILL');
  });

  it('says hello with the host\'s hostname, serving the host\'s / from /host', async () => {
    const hello = JSON.parse((await run(process.execPath, [CLI, 'hello', url])).stdout) as { hostname: string; root: string };
    assert.equal(hello.hostname, hostname());
    assert.equal(hello.root, '/host');
  });

  it('runs processes in the host\'s mount namespace, in the directory asked for', async () => {
    const result = await run(process.execPath, [CLI, 'exec', '-C', tmp, url, '--', 'sh', '-c', 'pwd; readlink /proc/self/ns/mnt; cat on-the-host.txt']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${tmp}\n${await readlink('/proc/self/ns/mnt')}\nwritten on the host\n`);
    const missing = await run(process.execPath, [CLI, 'exec', url, '--', 'no-such-command-here']);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /command not found/);
  });

  it('mounts the host\'s files at their own paths', async () => {
    const at = join(tmp, 'mnt');
    await mkdir(at);
    mount = await startMountProcess(url, at, ['--agent', 'lab-host']);
    assert.equal(await readFile(join(at, tmp, 'on-the-host.txt'), 'utf8'), 'written on the host\n');
    await writeFile(join(at, tmp, 'from-the-master.txt'), 'through the container\n');
    assert.equal(await readFile(join(tmp, 'from-the-master.txt'), 'utf8'), 'through the container\n');
  });
});

describe('compose/slave.yml with compose/slave-secure.yml: TLS and per-slave permissions', () => {
  const project = `sbsecure${randomBytes(3).toString('hex')}`;
  let tmp: string;
  let hostProcess: ChildProcess;
  let url: string;
  let ca: string;
  let env: NodeJS.ProcessEnv;
  const compose = (...args: string[]) => run('docker-compose',
    ['-p', project, '-f', SLAVE_FILE, '-f', SECURE_FILE, '-f', join(tmp, 'override.yml'), ...args], { env, timeoutMs: 120_000 });
  const alice = () => ['--user', 'alice', '--password', 'pw-alice', '--inbox-prefix', '_INBOX_alice', '--tls-ca', ca];

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'splitbrain-slave-secure-'));
    await writeFile(join(tmp, 'override.yml'), OVERRIDE);
    const pki = await makeTestPki(join(tmp, 'pki'));
    ca = pki.ca;
    await writeFile(join(tmp, 'secrets.env'),
      'SLAVE_A_PASSWORD=pw-slave-a\nSLAVE_B_PASSWORD=pw-slave-b\nALICE_PASSWORD=pw-alice\nBOB_PASSWORD=pw-bob\nOPS_PASSWORD=pw-ops\n');
    hostProcess = spawn('sleep', ['600'], { stdio: 'ignore' });
    const port = await freePort();
    url = `nats://127.0.0.1:${port}`;
    env = {
      ...process.env, NATS_IMAGE: `splitbrain/nats:${TAG}`, SPLITBRAIN_IMAGE: `splitbrain/agent:${TAG}`,
      NATS_LISTEN: '127.0.0.1', NATS_PORT: String(port), HOST_PID: String(hostProcess.pid),
      AGENT_ID: 'slave-a', NATS_USER: 'slave-a', NATS_PASSWORD: 'pw-slave-a',
      NATS_SECRETS: join(tmp, 'secrets.env'), NATS_SERVER_CERT: pki.serverCert, NATS_SERVER_KEY: pki.serverKey, NATS_TLS_CA: pki.ca,
    };
    const up = await compose('up', '-d');
    assert.equal(up.code, 0, up.stderr);
    await waitFor('the agent', async () =>
      (await run(process.execPath, [CLI, 'hello', url, '--agent', 'slave-a', '--field', 'agentId', ...alice()])).stdout === 'slave-a\n', 60_000, 250);
  });

  after(async () => {
    if (tmp) {
      await compose('down', '-v');
      await rm(tmp, { recursive: true, force: true });
    }
    hostProcess?.kill('SIGKILL');
  });

  it('serves the granted master over TLS, and refuses anonymous clients, plain TCP and other slaves', async () => {
    const ran = await run(process.execPath, [CLI, 'exec', url, '--agent', 'slave-a', ...alice(), '--', 'echo', 'through TLS']);
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout, 'through TLS\n');
    const anonymous = await run(process.execPath, [CLI, 'hello', url, '--agent', 'slave-a', '--tls-ca', ca]);
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /authorization violation/);
    const other = await run(process.execPath, [CLI, 'hello', url, '--agent', 'slave-b', ...alice()]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /permissions violation/);
    const plain = await plainTcpAnswer(Number(new URL(url).port));
    assert.match(plain.said, /"tls_required":true/);
    assert.equal(plain.closed, true);
  });
});
