/**
 * The bus's own guards, as NATS users know them: a server that wants a user and password or a
 * token refuses us without them (with a message that says so) and serves us with them, given
 * as options or in the environment; a TLS server is reached with the CA (certificates made with
 * openssl at test time) and refuses plain connections; secrets never reach the logs.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startNats, type NatsServer } from '../helpers/nats-server.js';
import { makeTestPki, plainTcpAnswer } from '../helpers/pki.js';
import { CLI, run } from '../helpers/processes.js';
import { startAgentProcess, type AgentProcess } from '../helpers/slave.js';

const hello = (url: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  run(process.execPath, [CLI, 'hello', url, '--field', 'agentId', ...args], { env: { ...process.env, ...env }, timeoutMs: 30_000 });

describe('bus authentication and TLS', () => {
  let tmp: string;
  let root: string;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'splitbrain-auth-'));
    root = join(tmp, 'root');
    await mkdir(root);
  });
  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  describe('user and password', () => {
    let nats: NatsServer;
    let agent: AgentProcess;
    before(async () => {
      nats = await startNats(['--user', 'lab', '--pass', 's3cret-pw']);
      agent = await startAgentProcess(nats.url, 'guarded', root, ['--user', 'lab', '--password', 's3cret-pw', '--log-level', 'debug']);
    });
    after(async () => {
      await agent?.stop();
      await nats?.stop();
    });

    it('refuses a client without them, saying why, and serves one with them (options or environment)', async () => {
      const refused = await hello(nats.url, []);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /refused our credentials \(authorization violation\)/);
      const wrong = await hello(nats.url, ['--user', 'lab', '--password', 'wrong']);
      assert.equal(wrong.code, 1);
      assert.equal((await hello(nats.url, ['--user', 'lab', '--password', 's3cret-pw'])).stdout, 'guarded\n');
      const fromEnv = await hello(nats.url, [], { SPLITBRAIN_NATS_USER: 'lab', SPLITBRAIN_NATS_PASSWORD: 's3cret-pw' });
      assert.equal(fromEnv.stdout, 'guarded\n', fromEnv.stderr);
    });

    it('never writes the password to the logs, even at debug level', async () => {
      const ran = await run(process.execPath, [CLI, 'exec', nats.url, '--agent', 'guarded', '--log-level', 'debug', '--', 'true'],
        { env: { ...process.env, SPLITBRAIN_NATS_USER: 'lab', SPLITBRAIN_NATS_PASSWORD: 's3cret-pw' } });
      assert.equal(ran.code, 0, ran.stderr);
      assert.doesNotMatch(ran.stderr, /s3cret-pw/);
      assert.doesNotMatch(agent.log(), /s3cret-pw/);
    });
  });

  describe('token', () => {
    let nats: NatsServer;
    before(async () => { nats = await startNats(['--auth', 'tok-123']); });
    after(async () => { await nats?.stop(); });

    it('serves an agent and a client that give it', async () => {
      const agent = await startAgentProcess(nats.url, 'tokened', root, ['--token', 'tok-123']);
      try {
        assert.equal((await hello(nats.url, [])).code, 1);
        assert.equal((await hello(nats.url, ['--token', 'tok-123'])).stdout, 'tokened\n');
      } finally {
        await agent.stop();
      }
    });
  });

  describe('TLS', () => {
    let nats: NatsServer;
    let ca: string;
    before(async () => {
      const pki = await makeTestPki(join(tmp, 'pki'));
      ca = pki.ca;
      nats = await startNats(['--tls', '--tlscert', pki.serverCert, '--tlskey', pki.serverKey]);
    });
    after(async () => { await nats?.stop(); });

    it('reaches a TLS server with its CA; without the CA, or with an unreadable one, it says why', async () => {
      const agent = await startAgentProcess(nats.url, 'secured', root, ['--tls-ca', ca]);
      try {
        const ok = await hello(nats.url, ['--tls-ca', ca]);
        assert.equal(ok.stdout, 'secured\n', ok.stderr);
        // Without our CA: the server requires TLS, and its certificate is not trusted.
        const untrusted = await hello(nats.url, []);
        assert.equal(untrusted.code, 1);
        assert.match(untrusted.stderr, /cannot connect to nats:\/\/127\.0\.0\.1:\d+: TLS: the NATS server's certificate is not trusted/);
        // A client speaking plain TCP is turned away by the server.
        const answer = await plainTcpAnswer(nats.port);
        assert.match(answer.said, /"tls_required":true/);
        assert.doesNotMatch(answer.said, /PONG/);
        assert.equal(answer.closed, true, 'the server hung up on the plain client');
        const missingCa = await hello(nats.url, ['--tls-ca', join(tmp, 'no-such-ca.pem')]);
        assert.equal(missingCa.code, 1);
        assert.match(missingCa.stderr, /cannot read the TLS CA file/);
      } finally {
        await agent.stop();
      }
    });
  });
});
