/**
 * The shipped per-slave permissions (compose/nats/permissions.conf) on a real nats-server with
 * TLS, certificates made by openssl at test time: nobody without credentials gets in, plain TCP
 * is turned away, a master reaches the slave it was granted and gets a clear permission error
 * (and a non-zero status) for another, and an agent's credentials serve only its own id.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { startNats, type NatsServer } from '../helpers/nats-server.js';
import { makeJwtAuth } from '../helpers/nats-jwt.js';
import { makeTestPki, plainTcpAnswer, type TestPki } from '../helpers/pki.js';
import { CLI, run, stopProcess, spawnCollecting, waitFor } from '../helpers/processes.js';
import { startAgentProcess, startMountProcess, type AgentProcess } from '../helpers/slave.js';

const CONFIG = new URL('../../../compose/nats/permissions.conf', import.meta.url).pathname;

const PASSWORDS = {
  SLAVE_A_PASSWORD: 'pw-slave-a', SLAVE_B_PASSWORD: 'pw-slave-b',
  ALICE_PASSWORD: 'pw-alice', BOB_PASSWORD: 'pw-bob', OPS_PASSWORD: 'pw-ops',
};

describe('per-slave permissions (compose/nats/permissions.conf)', () => {
  let tmp: string;
  let pki: TestPki;
  let nats: NatsServer;
  let agentA: AgentProcess;
  let agentB: AgentProcess;
  const roots = { a: '', b: '' };

  /** The options of one user of the shipped configuration. */
  const as = (user: string, password: string, inbox = true) => [
    '--user', user, '--password', password, '--tls-ca', pki.ca, ...(inbox ? ['--inbox-prefix', `_INBOX_${user}`] : []),
  ];
  const alice = () => as('alice', PASSWORDS.ALICE_PASSWORD);
  const cli = (args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 30_000 });

  /**
   * A raw NATS connection as `user`, to try what splitbrain itself never would, and what the
   * server refused it so far ("publish SUBJECT", "subscription SUBJECT").
   */
  const raw = async (user: string, password: string): Promise<{ nc: NatsConnection; refused: string[] }> => {
    const nc = await connect({ servers: nats.url, user, pass: password, tls: { caFile: pki.ca }, inboxPrefix: `_INBOX_${user}` });
    const refused: string[] = [];
    void (async () => {
      for await (const status of nc.status()) if (status.permissionContext) refused.push(`${status.permissionContext.operation} ${status.permissionContext.subject}`);
    })();
    return { nc, refused };
  };

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'splitbrain-perm-'));
    pki = await makeTestPki(join(tmp, 'pki'));
    roots.a = join(tmp, 'a');
    roots.b = join(tmp, 'b');
    await mkdir(roots.a);
    await mkdir(roots.b);
    await writeFile(join(roots.b, 'secret'), 'slave b only\n');
    nats = await startNats(['-c', CONFIG], { ...PASSWORDS, NATS_TLS_CERT: pki.serverCert, NATS_TLS_KEY: pki.serverKey });
    agentA = await startAgentProcess(nats.url, 'slave-a', roots.a, as('slave-a', PASSWORDS.SLAVE_A_PASSWORD));
    agentB = await startAgentProcess(nats.url, 'slave-b', roots.b, as('slave-b', PASSWORDS.SLAVE_B_PASSWORD));
  });
  after(async () => {
    await agentA?.stop();
    await agentB?.stop();
    await nats?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('refuses a client without credentials, and plain TCP', async () => {
    const anonymous = await cli(['hello', nats.url, '--agent', 'slave-a', '--tls-ca', pki.ca]);
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /refused our credentials \(authorization violation\)/);
    const answer = await plainTcpAnswer(nats.port);
    assert.match(answer.said, /"tls_required":true/);
    assert.doesNotMatch(answer.said, /PONG/);
    assert.equal(answer.closed, true, 'the server hung up on the plain client');
  });

  it('lets a master use the slave it was granted: files, processes and their output', async () => {
    const ran = await cli(['exec', nats.url, '--agent', 'slave-a', ...alice(), '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(ran.code, 3, ran.stderr);
    assert.equal(ran.stdout, 'out\n');
    assert.match(ran.stderr, /^err$/m);
    const mountPath = join(tmp, 'mnt-a');
    await mkdir(mountPath);
    const mount = await startMountProcess(nats.url, mountPath, ['--agent', 'slave-a', ...alice()]);
    try {
      await writeFile(join(mountPath, 'from-alice'), 'hello a\n');
      assert.equal(await readFile(join(roots.a, 'from-alice'), 'utf8'), 'hello a\n');
    } finally {
      await mount.stop();
    }
  });

  it('gives a master a clear permission error and a non-zero status for a slave it was not granted', async () => {
    const hello = await cli(['hello', nats.url, '--agent', 'slave-b', ...alice()]);
    assert.equal(hello.code, 1);
    assert.match(hello.stderr, /does not allow this user to send to splitbrain\.slave-b\.agent\.hello \(permissions violation\): it was not granted that agent/);
    const ran = await cli(['exec', nats.url, '--agent', 'slave-b', ...alice(), '--', 'cat', '/secret']);
    assert.equal(ran.code, 255);
    assert.match(ran.stderr, /permissions violation/);
    assert.equal(ran.stdout, '');
    const mountPath = join(tmp, 'mnt-b');
    await mkdir(mountPath);
    const mount = await cli(['mount', nats.url, mountPath, '--agent', 'slave-b', ...alice()]);
    assert.notEqual(mount.code, 0);
    assert.match(mount.stderr, /permissions violation/);
    // Without --agent, discovery is not granted either, and the message says what to do.
    const discover = await cli(['hello', nats.url, ...alice()]);
    assert.equal(discover.code, 1);
    assert.match(discover.stderr, /does not allow this user to discover agents .*name the agent with --agent/);
    // Without the inbox prefix it was granted, a master is told which option it lacks.
    const noInbox = await cli(['hello', nats.url, '--agent', 'slave-a', ...as('alice', PASSWORDS.ALICE_PASSWORD, false)]);
    assert.equal(noInbox.code, 1);
    assert.match(noInbox.stderr, /subscribe to _INBOX\.\S+ \(permissions violation\): give --inbox-prefix/);
  });

  it('lets an operator list and watch every agent, and use none', async () => {
    const ops = as('ops', PASSWORDS.OPS_PASSWORD);
    const listed = await cli(['status', nats.url, ...ops]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^slave-a\s/m);
    assert.match(listed.stdout, /^slave-b\s/m);
    const watched = await cli(['top', nats.url, '--agent', 'slave-b', '--interval', '0.2', '--count', '1', ...ops]);
    assert.equal(watched.code, 0, watched.stderr);
    assert.match(watched.stdout, /slave-b {2}[\d.]+ ops\/s/);
    const used = await cli(['exec', nats.url, '--agent', 'slave-b', ...ops, '--', 'cat', '/secret']);
    assert.equal(used.code, 255);
    // Refused at the first step: reading the process's output from slave-b.
    assert.match(used.stderr, /^splitbrain: cannot reach the slave's agent slave-b: .*subscribe to splitbrain\._out\.slave-b\.\w+ \(permissions violation\)$/m);
    assert.doesNotMatch(used.stderr, /"level"/);
  });

  it('keeps masters from reading each other\'s answers or another agent\'s requests', async () => {
    const { nc, refused } = await raw('alice', PASSWORDS.ALICE_PASSWORD);
    try {
      for (const subject of ['_INBOX_bob.>', 'splitbrain.slave-a.>', 'splitbrain._out.slave-b.>', '>']) nc.subscribe(subject);
      nc.publish('splitbrain._out.slave-a.forged', new Uint8Array(1));
      await nc.flush();
      await waitFor('the server to refuse all five', () => refused.length >= 5, 5000);
      assert.deepEqual(refused.sort(), [
        'publish splitbrain._out.slave-a.forged', 'subscription >', 'subscription _INBOX_bob.>',
        'subscription splitbrain._out.slave-b.>', 'subscription splitbrain.slave-a.>',
      ]);
    } finally {
      await nc.close();
    }
  });

  it('lets an agent serve only its own id: another agent\'s credentials cannot impersonate it', async () => {
    // slave-b's credentials, claiming to be slave-a: refused at start, with the reason.
    const impostor = spawnCollecting(process.execPath, [CLI, 'agent', '--nats', nats.url, '--id', 'slave-a', '--root', roots.b,
      ...as('slave-b', PASSWORDS.SLAVE_B_PASSWORD, false)]);
    try {
      await waitFor('the impostor to exit', () => impostor.child.exitCode !== null, 15_000);
      assert.equal(impostor.child.exitCode, 1);
      assert.match(impostor.stderr(), /does not allow this user to subscribe to splitbrain\.slave-a\.> \(permissions violation\)/);
    } finally {
      await stopProcess(impostor.child);
    }
    // Nor can it answer slave-a's requests some other way, or send requests of its own.
    const { nc, refused } = await raw('slave-b', PASSWORDS.SLAVE_B_PASSWORD);
    try {
      nc.subscribe('splitbrain.*.fs.read');
      nc.publish('splitbrain.slave-a.fs.unlink', new Uint8Array(1));
      nc.publish('_INBOX_alice.forged.1', new Uint8Array(1));
      nc.publish('splitbrain._out.slave-a.forged', new Uint8Array(1));
      await nc.flush();
      await waitFor('the server to refuse all four', () => refused.length >= 4, 5000);
      assert.deepEqual(refused.sort(), [
        'publish _INBOX_alice.forged.1', 'publish splitbrain._out.slave-a.forged', 'publish splitbrain.slave-a.fs.unlink',
        'subscription splitbrain.*.fs.read',
      ]);
    } finally {
      await nc.close();
    }
    // The real slave-a still serves alice.
    const ok = await cli(['hello', nats.url, '--agent', 'slave-a', '--field', 'agentId', ...alice()]);
    assert.equal(ok.stdout, 'slave-a\n', ok.stderr);
  });
});

describe('the same permissions in NATS JWTs (--creds), as nsc makes them', () => {
  let tmp: string;
  let nats: NatsServer;
  let agent: AgentProcess;
  const creds = (user: string) => ['--creds', join(tmp, `${user}.creds`)];
  const cli = (args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 30_000 });

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'splitbrain-jwt-'));
    const root = join(tmp, 'root');
    await mkdir(root);
    const config = await makeJwtAuth(tmp, [
      { name: 'slave-a', subscribe: ['splitbrain.slave-a.>', 'splitbrain._discover'], publish: ['splitbrain._out.slave-a.>', 'splitbrain._chg.slave-a'], respond: true },
      { name: 'alice', publish: ['splitbrain.slave-a.>'], subscribe: ['_INBOX_alice.>', 'splitbrain._out.slave-a.>', 'splitbrain._chg.slave-a'] },
    ]);
    nats = await startNats(['-c', config]);
    agent = await startAgentProcess(nats.url, 'slave-a', root, creds('slave-a'));
  });
  after(async () => {
    await agent?.stop();
    await nats?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('serves the granted master with its credentials file, and refuses it another slave', async () => {
    const ran = await cli(['exec', nats.url, '--agent', 'slave-a', ...creds('alice'), '--inbox-prefix', '_INBOX_alice', '--', 'echo', 'signed']);
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout, 'signed\n');
    const other = await cli(['hello', nats.url, '--agent', 'slave-b', ...creds('alice'), '--inbox-prefix', '_INBOX_alice']);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /send to splitbrain\.slave-b\.agent\.hello \(permissions violation\)/);
    const anonymous = await cli(['hello', nats.url, '--agent', 'slave-a']);
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /authorization violation/);
    const missing = await cli(['hello', nats.url, '--agent', 'slave-a', '--creds', join(tmp, 'nobody.creds')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read the credentials file .*nobody\.creds: ENOENT/);
  });
});
