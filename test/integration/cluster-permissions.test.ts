/**
 * Issue 15: the shipped deployment files, run for real: a cluster server with
 * compose/nats/cluster.conf (its teams, ops and labs) and a lab's leaf node with
 * compose/nats/lab-leaf.conf (its agents), TLS and passwords as in production, certificates made
 * at test time. The permissions of issue 7 hold across the leaf connection: a team reaches the
 * agents it was granted, in the lab, and is refused the others; ops lists them; an agent checks
 * its id through the cluster.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startNats, type NatsServer } from '../helpers/nats-server.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { freePort } from '../helpers/ports.js';
import { CLI, run, waitFor } from '../helpers/processes.js';
import { startAgentProcess, startMountProcess, type AgentProcess, type MountProcess } from '../helpers/slave.js';

const CLUSTER_CONF = new URL('../../../compose/nats/cluster.conf', import.meta.url).pathname;
const LEAF_CONF = new URL('../../../compose/nats/lab-leaf.conf', import.meta.url).pathname;

const PASSWORDS = {
  TEAM_A_PASSWORD: 'pwTeamA', TEAM_B_PASSWORD: 'pwTeamB', OPS_PASSWORD: 'pwOps',
  LAB_1_PASSWORD: 'pwLabOne', LAB_2_PASSWORD: 'pwLabTwo', ROUTE_PASSWORD: 'pwRoute',
  SLAVE_A_PASSWORD: 'pwSlaveA', SLAVE_B_PASSWORD: 'pwSlaveB',
};

describe('the shipped cluster and lab leaf node (compose/nats/cluster.conf, lab-leaf.conf)', () => {
  let tmp: string;
  let pki: TestPki;
  let hub: NatsServer;
  let leaf: NatsServer;
  const agents: AgentProcess[] = [];
  let mount: MountProcess | undefined;

  const as = (user: string, password: string) => ['--user', user, '--password', password, '--tls-ca', pki.ca, '--inbox-prefix', `_INBOX_${user}`];
  const teamA = () => as('team-a', PASSWORDS.TEAM_A_PASSWORD);
  const teamB = () => as('team-b', PASSWORDS.TEAM_B_PASSWORD);
  const cli = (args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 30_000 });

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'splitbrain-cluster-perm-'));
    pki = await makeTestPki(join(tmp, 'pki'));
    const tls = { NATS_TLS_CERT: pki.serverCert, NATS_TLS_KEY: pki.serverKey, NATS_TLS_CA: pki.ca };
    const [cluster, leafPort, monitor] = [await freePort(), await freePort(), await freePort()];
    // One server of the cluster is enough for permissions; its route list names only itself.
    hub = await startNats(['-c', CLUSTER_CONF], {
      ...PASSWORDS, ...tls, SERVER_NAME: 'hub-1', CLIENT_LISTEN: '127.0.0.1:4222', CLUSTER_NAME: 'farm',
      CLUSTER_LISTEN: `127.0.0.1:${cluster}`, LEAF_LISTEN: `127.0.0.1:${leafPort}`, MONITOR_LISTEN: `127.0.0.1:${monitor}`,
      CLUSTER_ROUTES: `[nats-route://route:${PASSWORDS.ROUTE_PASSWORD}@127.0.0.1:${cluster}]`,
    });
    leaf = await startNats(['-c', LEAF_CONF], {
      ...PASSWORDS, ...tls, SERVER_NAME: 'leaf-lab-1', LEAF_LISTEN: '127.0.0.1:4222',
      LEAF_REMOTES: `[tls://lab-1:${PASSWORDS.LAB_1_PASSWORD}@127.0.0.1:${leafPort}]`,
    });
    await waitFor('the leaf node connected', async () => {
      const leafz = await fetch(`http://127.0.0.1:${monitor}/leafz`).then((r) => r.json() as Promise<{ leafnodes: number }>, () => undefined);
      return (leafz?.leafnodes ?? 0) >= 1;
    }, 15_000, 100);
    for (const id of ['slave-a', 'slave-b']) {
      const root = join(tmp, id);
      await mkdir(root);
      await writeFile(join(root, 'whose'), `${id}\n`);
      const password = id === 'slave-a' ? PASSWORDS.SLAVE_A_PASSWORD : PASSWORDS.SLAVE_B_PASSWORD;
      agents.push(await startAgentProcess(leaf.url, id, root, as(id, password)));
    }
  });
  after(async () => {
    await mount?.stop();
    for (const agent of agents) await agent.stop();
    await leaf?.stop();
    await hub?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('lets an agent in the lab check its id through the cluster (no warning that it could not)', () => {
    for (const agent of agents) assert.doesNotMatch(agent.log(), /could not check whether another agent serves this id/);
  });

  it('lets a team reach the agents it was granted, through the leaf node, and refuses it the others', async () => {
    const mine = await cli(['hello', hub.url, '--agent', 'slave-a', '--field', 'agentId', ...teamA()]);
    assert.equal(mine.stdout, 'slave-a\n', mine.stderr);
    const theirs = await cli(['hello', hub.url, '--agent', 'slave-b', ...teamA()]);
    assert.equal(theirs.code, 1);
    assert.match(theirs.stderr, /does not allow this user to send to splitbrain\.slave-b\.agent\.hello/);
    const b = await cli(['hello', hub.url, '--agent', 'slave-b', '--field', 'agentId', ...teamB()]);
    assert.equal(b.stdout, 'slave-b\n', b.stderr);
  });

  it('carries files and process output across the leaf connection for a granted team', async () => {
    const mnt = join(tmp, 'mnt');
    await mkdir(mnt);
    mount = await startMountProcess(hub.url, mnt, ['--agent', 'slave-a', ...teamA()]);
    assert.equal(await readFile(join(mnt, 'whose'), 'utf8'), 'slave-a\n');
    await writeFile(join(mnt, 'from-team-a'), 'written\n');
    assert.equal(await readFile(join(tmp, 'slave-a', 'from-team-a'), 'utf8'), 'written\n');
    const out = await cli(['exec', hub.url, '--agent', 'slave-a', ...teamA(), '-n', '--', 'cat', join(tmp, 'slave-a', 'whose')]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'slave-a\n');
  });

  it('lets ops list the lab\'s agents, with the leaf node as their server', async () => {
    const listed = await cli(['status', hub.url, '--json', ...as('ops', PASSWORDS.OPS_PASSWORD)]);
    assert.equal(listed.code, 0, listed.stderr);
    const entries = JSON.parse(listed.stdout) as { agentId: string; hello?: { server?: { name: string } } }[];
    assert.deepEqual(entries.map((e) => [e.agentId, e.hello?.server?.name]), [['slave-a', 'leaf-lab-1'], ['slave-b', 'leaf-lab-1']]);
  });
});
