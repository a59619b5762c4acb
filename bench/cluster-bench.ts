/**
 * The cluster part of the bench (issue 15): splitbrain on a test farm's NATS deployment, three
 * clustered servers and a leaf node (nats-farm.ts), all on loopback.
 *
 *  - Through a leaf node: the raw transport's round trip and throughput, and a mount's
 *    sequential write and cold read, with the agent on the leaf and the master on the cluster,
 *    next to both on one server.
 *  - Memory: an agent's and a mount's resident size, idle and at their peak after the
 *    sequential workloads.
 *  - Load (a measurement, not a timed test): 20 agents on the leaf node and 10 masters on the
 *    cluster, each master a mount and a driver (load-master.ts) running a checked mixed workload
 *    against its own slave for BENCH_LOAD_SECONDS; aggregate operations per second, p50 and
 *    p99 latency and failed checks, next to one master and one agent alone; the memory of every
 *    agent and mount.
 */
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startAgent } from './agent-daemon.js';
import type { Cleanup } from './cleanup.js';
import type { Fixtures } from './fixtures.js';
import { workloads } from './fs-workloads.js';
import { markdownTable } from './markdown-table.js';
import { startNatsFarm } from './nats-farm.js';
import { procMemory } from './proc-memory.js';
import { startSplitbrain } from './splitbrain-target.js';
import { median, percentile } from './stats.js';
import type { Target } from './target.js';
import { measureTransportFloor, type FloorResult } from './transport-floor.js';
import type { LoadMasterReport } from './load-master.js';

const LOAD_MASTER = fileURLToPath(new URL('./load-master.js', import.meta.url));
export const LOAD_AGENTS = 20;
export const LOAD_MASTERS = 10;

export interface SeqResult { writeMBps: number; readMBps: number }

export interface LoadSummary {
  agents: number;
  masters: number;
  seconds: number;
  ops: number;
  opsPerSecond: number;
  p50Us: number;
  p99Us: number;
  failures: string[];
  /** Resident MiB at the end: agents serving a master, idle agents, mounts (mean, max). */
  busyAgentMb: [number, number];
  idleAgentMb?: [number, number];
  mountMb: [number, number];
}

export interface ClusterBenchResults {
  floorDirect: FloorResult;
  floorLeaf: FloorResult;
  seqDirect: SeqResult;
  seqLeaf: SeqResult;
  /** MiB: idle after start (resident, and proportional), and peak (VmHWM) after the sequential workloads. */
  memory: { agentIdle: number; agentIdlePss: number; agentPeak: number; mountIdle: number; mountIdlePss: number; mountPeak: number };
  loadAlone: LoadSummary;
  loadFarm: LoadSummary;
}

/** VmRSS or VmHWM of a process, in MiB. */
async function residentMb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const memory = await procMemory(pid);
  return field === 'VmRSS' ? memory.resident : memory.peak;
}

/** Proportional set size, MiB (proc-memory.ts): Node's own code is shared by all the agents of a host. */
async function proportionalMb(pid: number): Promise<number> {
  return (await procMemory(pid)).proportional;
}

function meanMax(values: number[]): [number, number] {
  return [values.reduce((a, b) => a + b, 0) / Math.max(1, values.length), Math.max(...values)];
}

async function sequential(target: Target, fixtures: Fixtures, runs: number, progress: (line: string) => void, label: string): Promise<SeqResult> {
  const [write, read] = ['seq-write', 'seq-read'].map((id) => workloads(fixtures).find((w) => w.id === id));
  if (!write || !read) throw new Error('no sequential workloads');
  const notes: string[] = [];
  const mb = fixtures.sizeBytes / 1e6;
  const writes: number[] = [];
  const reads: number[] = [];
  for (let run = 1; run <= runs; run++) {
    const ctx = { target, fixtures, check: run === 1, note: (m: string) => notes.push(m) };
    writes.push(mb / ((await write.run(ctx)) / 1000));
    reads.push(mb / ((await read.run(ctx)) / 1000));
    progress(`[pass ${run}/${runs}] ${label}  write ${writes.at(-1)?.toFixed(0)} MB/s, cold read ${reads.at(-1)?.toFixed(0)} MB/s`);
  }
  if (notes.length > 0) throw new Error(`${label}: ${notes.join('; ')}`);
  return { writeMBps: median(writes), readMBps: median(reads) };
}

/** Runs one load-master per target at once; resolves with their reports. */
async function drive(natsUrls: string, targets: { agentId: string; target: Target }[], seconds: number): Promise<LoadMasterReport[]> {
  return Promise.all(targets.map(({ agentId, target }) => new Promise<LoadMasterReport>((resolve, reject) => {
    const child = spawn(process.execPath, [LOAD_MASTER, natsUrls, agentId, target.mountPath, String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 120) * 1000);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`load master for ${agentId} exited ${code}: ${err.trim().slice(-500)}`));
      else resolve(JSON.parse(out) as LoadMasterReport);
    });
  })));
}

async function summarize(reports: LoadMasterReport[], agents: number, seconds: number, busy: Target[], idleAgentPids: number[]): Promise<LoadSummary> {
  const latencies = reports.flatMap((r) => r.latenciesUs).sort((a, b) => a - b);
  const ops = latencies.length;
  return {
    agents, masters: reports.length, seconds, ops, opsPerSecond: ops / seconds,
    p50Us: median(latencies), p99Us: percentile(latencies, 99),
    failures: reports.flatMap((r) => r.failures),
    busyAgentMb: meanMax(await Promise.all(busy.map((t) => residentMb(t.pids?.agent ?? 0, 'VmRSS')))),
    ...(idleAgentPids.length > 0 ? { idleAgentMb: meanMax(await Promise.all(idleAgentPids.map((pid) => residentMb(pid, 'VmRSS')))) } : {}),
    mountMb: meanMax(await Promise.all(busy.map((t) => residentMb(t.pids?.mount ?? 0, 'VmRSS')))),
  };
}

export async function measureClusterBench(
  workDir: string, fixtures: Fixtures, runs: number, loadSeconds: number, cleanup: Cleanup, progress: (line: string) => void,
): Promise<ClusterBenchResults> {
  const dir = join(workDir, 'cluster');
  await mkdir(dir);
  const farm = await startNatsFarm(dir, cleanup);
  const hub = farm.hubs[0] as string;
  progress(`NATS farm: hubs ${farm.hubUrls}, leaf ${farm.leafUrl}`);

  const floorDirect = await measureTransportFloor(hub, dir, fixtures.sizeBytes, runs, cleanup, progress, hub, 'raw, one server');
  const floorLeaf = await measureTransportFloor(hub, dir, fixtures.sizeBytes, runs, cleanup, progress, farm.leafUrl, 'raw, via leaf');

  // Cold here means the page cache dropped: the data must come over the bus. The mount keeps
  // attributes only, coherent with the slave, so there is no point waiting out its 60 s.
  const cold = (target: Target): Target => ({ ...target, userspaceCacheMs: 500 });
  const direct = cold(await startSplitbrain(dir, hub, '', cleanup, 'direct', hub));
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const agentPid = direct.pids?.agent ?? 0;
  const mountPid = direct.pids?.mount ?? 0;
  const idle = {
    agent: await residentMb(agentPid, 'VmRSS'), agentPss: await proportionalMb(agentPid),
    mount: await residentMb(mountPid, 'VmRSS'), mountPss: await proportionalMb(mountPid),
  };
  const seqDirect = await sequential(direct, fixtures, runs, progress, 'mount, one server');
  const memory = {
    agentIdle: idle.agent, agentIdlePss: idle.agentPss, mountIdle: idle.mount, mountIdlePss: idle.mountPss,
    agentPeak: await residentMb(direct.pids?.agent ?? 0, 'VmHWM'), mountPeak: await residentMb(direct.pids?.mount ?? 0, 'VmHWM'),
  };
  const viaLeaf = cold(await startSplitbrain(dir, farm.hubUrls, '', cleanup, 'via-leaf', farm.leafUrl));
  const seqLeaf = await sequential(viaLeaf, fixtures, runs, progress, 'mount, agent on the leaf');

  // One master and one agent alone, then the farm: agents on the leaf, masters on the cluster.
  const alone = await startSplitbrain(dir, farm.hubUrls, '', cleanup, 'load-alone', farm.leafUrl);
  progress(`load: 1 master, 1 agent, ${loadSeconds} s`);
  const loadAlone = await summarize(await drive(farm.hubUrls, [{ agentId: 'load-alone', target: alone }], loadSeconds), 1, loadSeconds, [alone], []);
  const masters: { agentId: string; target: Target }[] = [];
  for (let i = 1; i <= LOAD_MASTERS; i++) {
    const agentId = `load-${i}`;
    masters.push({ agentId, target: await startSplitbrain(dir, farm.hubUrls, '', cleanup, agentId, farm.leafUrl) });
  }
  const idlePids: number[] = [];
  for (let i = LOAD_MASTERS + 1; i <= LOAD_AGENTS; i++) {
    const slavePath = join(dir, `load-${i}-slave`);
    await mkdir(slavePath);
    const agent = await startAgent({ label: `agent load-${i}`, natsUrl: farm.leafUrl, agentId: `load-${i}`, slavePath, logPath: join(dir, `load-${i}-agent.log`) }, cleanup);
    idlePids.push(agent.pid);
  }
  progress(`load: ${LOAD_MASTERS} masters, ${LOAD_AGENTS} agents, ${loadSeconds} s`);
  const farmReports = await drive(farm.hubUrls, masters, loadSeconds);
  const loadFarm = await summarize(farmReports, LOAD_AGENTS, loadSeconds, masters.map((m) => m.target), idlePids);
  progress(`load: ${loadFarm.opsPerSecond.toFixed(0)} ops/s (alone ${loadAlone.opsPerSecond.toFixed(0)}), p99 ${(loadFarm.p99Us / 1000).toFixed(1)} ms, ${loadFarm.failures.length} failed checks`);
  return { floorDirect, floorLeaf, seqDirect, seqLeaf, memory, loadAlone, loadFarm };
}

const f0 = (n: number) => n.toFixed(0);
const ms = (us: number) => `${(us / 1000).toFixed(2)} ms`;
const mib = ([mean, max]: [number, number]) => `${mean.toFixed(0)} MiB (max ${max.toFixed(0)})`;

export function renderClusterSection(r: ClusterBenchResults | undefined, error: string | undefined, heading: string): string {
  const out = ['### Cluster: through a leaf node, memory, and many masters at once', '', heading, ''];
  if (!r) return [...out, `The cluster part failed: ${error ?? 'unknown'}`].join('\n');
  const ratio = (leaf: number, direct: number) => `${(leaf / direct).toFixed(2)}×`;
  out.push(markdownTable(['', 'one server (agent and master on it)', 'through a leaf node (agent on the leaf, master on the cluster)', 'leaf ÷ one server'], [
    ['raw round trip (median)', `${f0(r.floorDirect.rttMedianUs)} µs`, `${f0(r.floorLeaf.rttMedianUs)} µs`, ratio(r.floorLeaf.rttMedianUs, r.floorDirect.rttMedianUs)],
    ['raw read (1 MiB messages, 4 in flight)', `${f0(median(r.floorDirect.readMBps))} MB/s`, `${f0(median(r.floorLeaf.readMBps))} MB/s`, ratio(median(r.floorLeaf.readMBps), median(r.floorDirect.readMBps))],
    ['raw write', `${f0(median(r.floorDirect.writeMBps))} MB/s`, `${f0(median(r.floorLeaf.writeMBps))} MB/s`, ratio(median(r.floorLeaf.writeMBps), median(r.floorDirect.writeMBps))],
    ['mount: sequential write (`dd`, conv=fsync)', `${f0(r.seqDirect.writeMBps)} MB/s`, `${f0(r.seqLeaf.writeMBps)} MB/s`, ratio(r.seqLeaf.writeMBps, r.seqDirect.writeMBps)],
    ['mount: cold sequential read', `${f0(r.seqDirect.readMBps)} MB/s`, `${f0(r.seqLeaf.readMBps)} MB/s`, ratio(r.seqLeaf.readMBps, r.seqDirect.readMBps)],
  ]), '');
  out.push('Three clustered nats-servers and a leaf node connected out to them (`bench/nats-farm.ts`), on loopback. The raw rows are the transport floor above (the responder on the leaf node or on the requester\'s server); the mount rows are the sequential workloads above, median of the passes.', '');
  out.push(markdownTable(['Memory', 'idle, 2 s after start: resident (proportional)', 'peak resident, after the sequential workloads'], [
    ['`splitbrain agent`', `${r.memory.agentIdle.toFixed(0)} MiB (${r.memory.agentIdlePss.toFixed(0)} MiB)`, `${r.memory.agentPeak.toFixed(0)} MiB`],
    ['`splitbrain mount`', `${r.memory.mountIdle.toFixed(0)} MiB (${r.memory.mountIdlePss.toFixed(0)} MiB)`, `${r.memory.mountPeak.toFixed(0)} MiB`],
  ]), '');
  out.push('Goal: an idle agent under 60 MB, so a lab can run 50 on one small host. Resident is VmRSS (peak: VmHWM); proportional is the Pss of /proc/PID/smaps_rollup, which counts a page shared by N processes 1/N: Node\'s own code, about 40 MiB of every agent\'s resident size, is shared by all the agents of a host, and what each further agent costs is nearer its proportional size.', '');
  const row = (s: LoadSummary) => [
    `${s.masters} master${s.masters > 1 ? 's' : ''}, ${s.agents} agent${s.agents > 1 ? 's' : ''}`, f0(s.opsPerSecond), f0(s.opsPerSecond / s.masters),
    ms(s.p50Us), ms(s.p99Us), String(s.failures.length), mib(s.busyAgentMb), s.idleAgentMb ? mib(s.idleAgentMb) : '-', mib(s.mountMb),
  ];
  out.push(markdownTable(['Load', 'ops/s (all masters)', 'ops/s per master', 'p50', 'p99', 'failed checks', 'agent serving a master', 'idle agent', 'mount'],
    [row(r.loadAlone), row(r.loadFarm)]), '');
  out.push(`Each master is a \`splitbrain mount\` on the cluster (all three URLs) and a driver process (\`bench/load-master.ts\`) running, for ${r.loadFarm.seconds} s, rounds of create + write 4 KiB, read back, \`stat\`, \`unlink\` and a \`stat\` that must fail, and a bridged \`true\` every fourth round, against its own agent on the leaf node; every result is checked. The other ${LOAD_AGENTS - LOAD_MASTERS} agents are on the leaf node too, idle. Latency is per operation, all kinds together; memory is VmRSS at the end. Everything shares this machine's cores: the farm's figures are what ${LOAD_MASTERS} masters get together on it, not what a fleet of machines would.`);
  if (r.loadFarm.failures.length + r.loadAlone.failures.length > 0) {
    out.push('', `Failed checks: ${[...r.loadAlone.failures, ...r.loadFarm.failures].slice(0, 10).join('; ')}`);
  }
  return out.join('\n');
}
