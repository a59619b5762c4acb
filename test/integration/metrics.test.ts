/**
 * `--metrics HOST:PORT`: after a workload, the agent's and the mount's Prometheus metrics show
 * the operations it caused, by op and result, the bytes it moved and the handles open.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../helpers/ports.js';
import { run } from '../helpers/processes.js';
import { startAgentProcess, startMountProcess, startBareAgent, type AgentProcess, type BareAgent, type MountProcess } from '../helpers/slave.js';

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** The value of one sample line, e.g. metric('x_total{op="fs.read",errno="OK"}'). */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('metrics', () => {
  let slave: BareAgent;
  let agent: AgentProcess;
  let mount: MountProcess;
  let agentPort: number;
  let mountPort: number;
  let mnt: string;

  before(async () => {
    slave = await startBareAgent({ id: 'counted' });
    await slave.agent.stop();
    agentPort = await freePort();
    agent = await startAgentProcess(slave.nats.url, 'counted', slave.root, ['--metrics', `127.0.0.1:${agentPort}`]);
    mountPort = await freePort();
    mnt = join(slave.tmp, 'mnt');
    await mkdir(mnt);
    mount = await startMountProcess(slave.nats.url, mnt, ['--agent', 'counted', '--metrics', `127.0.0.1:${mountPort}`]);
  });
  after(async () => {
    await mount?.stop();
    await agent?.stop();
    await slave?.stop();
  });

  it('counts the operations, bytes and handles a workload caused, on the agent and on the mount', async () => {
    const before = await scrape(agentPort);
    const data = Buffer.alloc(300_000, 7);
    await writeFile(join(mnt, 'counted.bin'), data);
    assert.deepEqual(await readFile(join(slave.root, 'counted.bin')), data);
    const agentText = await scrape(agentPort);
    assert.equal(sample(agentText, 'splitbrain_agent_ops_total{op="fs.create",errno="OK"}')
      - sample(before, 'splitbrain_agent_ops_total{op="fs.create",errno="OK"}'), 1);
    assert.ok(sample(agentText, 'splitbrain_agent_ops_total{op="fs.write",errno="OK"}') >= 1);
    assert.ok(sample(agentText, 'splitbrain_agent_bytes_total{direction="written"}') >= data.length);
    assert.match(agentText, /splitbrain_agent_op_seconds_bucket\{le="[0-9.e+-]+",op="fs\.write"\} \d+/);
    assert.match(agentText, /splitbrain_agent_open_handles\{kind="file"\} \d+/);
    const mountText = await scrape(mountPort);
    assert.ok(sample(mountText, 'splitbrain_client_requests_total{op="fs.create",result="OK"}') >= 1);
    assert.ok(sample(mountText, 'splitbrain_client_requests_total{op="fs.write",result="OK"}') >= 1);
    assert.equal(sample(mountText, 'splitbrain_agent_boot_changes_total'), 0);
  });

  it('answers the attribute probes of `ls -l` (ACL, security label) of what it made without asking, and an attribute set shows', async () => {
    const ops = async (op: string) => {
      const text = await scrape(agentPort);
      return sample(text, `splitbrain_agent_ops_total{op="${op}",errno="OK"}`) + sample(text, `splitbrain_agent_ops_total{op="${op}",errno="ENODATA"}`);
    };
    await run('sh', ['-c', `mkdir -p '${mnt}/made/sub' && for i in 1 2 3 4 5; do echo $i > '${mnt}/made/f'$i; echo $i > '${mnt}/made/sub/g'$i; ln -s f$i '${mnt}/made/l'$i; done`]);
    const probes = await ops('fs.getxattr') + await ops('fs.listxattr');
    const listed = await run('ls', ['-lR', join(mnt, 'made')]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /f5/);
    assert.equal(await ops('fs.getxattr') + await ops('fs.listxattr'), probes, 'probes the agent answered');
    // Given an attribute, it has one: the mount asks again.
    await run('python3', ['-c', `import os; os.setxattr('${mnt}/made/f1', 'user.tag', b'x'); print(os.listxattr('${mnt}/made/f1'), os.getxattr('${mnt}/made/f1', 'user.tag'))`]).then((r) => {
      assert.equal(r.stdout.trim(), "['user.tag'] b'x'", r.stderr);
    });
  });
});
