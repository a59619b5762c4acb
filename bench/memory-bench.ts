/**
 * The memory part of the bench (issue 22, point 6): what one agent costs its host.
 *
 *  - Idle: an agent serving an empty directory to nobody, 2 s after it first answered its hello
 *    and again 20 s after (V8 gives back what its start left over once it has idled ~10 s).
 *  - 100 stalled readers: `splitbrain bridge` runs 100 bridged `yes` through the static shim,
 *    whose stdout pipes the bench never reads. Each shim blocks on its pipe, its bridge returns
 *    no more credit, and the agent keeps what it sent and was not taken, for a failover
 *    (agent/proc/output-budget.ts). Measured once what the agent keeps has settled, past
 *    --output-grace: with the default --output-budget, and with one larger than every window
 *    together (each process its own window, which opens from 1 MiB as its master takes output).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import type { AgentStats } from '../protocol/index.js';
import { AgentClient } from '../transport/agent-client.js';
import { connectBus } from '../transport/bus.js';
import { CLI, startAgent } from './agent-daemon.js';
import type { Cleanup } from './cleanup.js';
import { DaemonStartError, logTail, readyReport, startDaemon } from './daemon.js';
import { markdownTable } from './markdown-table.js';
import { procMemory, type ProcMemory } from './proc-memory.js';

export const STALLED_READERS = 100;
const IDLE_EARLY_MS = 2000;
const IDLE_SETTLED_MS = 20_000;
/** The agent's default --output-grace: cuts come after it. */
const GRACE_MS = 10_000;
const SETTLE_TIMEOUT_MS = 90_000;
const BRIDGE_TIMEOUT_MS = 20_000;

export interface StalledResult {
  /** How the budget was set, for the table. */
  label: string;
  /** The agent's --output-budget, as it reports it (agent.stats). */
  budgetBytes: number;
  /** What the agent kept for its masters once settled (agent.stats). */
  keptBytes: number;
  cuts: number;
  agent: ProcMemory;
  bridge: ProcMemory;
  /** Seconds from the last reader's start until what was kept settled. */
  settleS: number;
}

export interface MemoryBenchResults {
  idleEarly: ProcMemory;
  idleSettled: ProcMemory;
  stalled: StalledResult[];
  durationS: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

async function idleAgent(dir: string, natsUrl: string, cleanup: Cleanup, progress: (line: string) => void): Promise<Pick<MemoryBenchResults, 'idleEarly' | 'idleSettled'>> {
  const slavePath = join(dir, 'idle-slave');
  await mkdir(slavePath);
  const agent = await startAgent({ label: 'idle agent', natsUrl, agentId: 'bench-idle', slavePath, logPath: join(dir, 'idle-agent.log') }, cleanup);
  const started = performance.now();
  try {
    await sleep(IDLE_EARLY_MS - (performance.now() - started));
    const idleEarly = await procMemory(agent.pid);
    await sleep(IDLE_SETTLED_MS - (performance.now() - started));
    const idleSettled = await procMemory(agent.pid);
    progress(`idle agent: ${idleEarly.resident.toFixed(1)} MiB resident after 2 s, ${idleSettled.resident.toFixed(1)} MiB after 20 s`);
    return { idleEarly, idleSettled };
  } finally {
    await agent.stop();
  }
}

async function stalledReaders(
  dir: string, natsUrl: string, run: { id: string; label: string; args: string[] },
  cleanup: Cleanup, progress: (line: string) => void,
): Promise<StalledResult> {
  const slavePath = join(dir, `${run.id}-slave`);
  const shimDir = join(dir, `${run.id}-shim`);
  const socket = join(dir, `${run.id}.sock`);
  await mkdir(slavePath);
  const agent = await startAgent({ label: `${run.id} agent`, natsUrl, agentId: run.id, slavePath, logPath: join(dir, `${run.id}-agent.log`), args: run.args }, cleanup);
  const bridge = startDaemon({
    label: `${run.id} bridge`, command: process.execPath, logPath: join(dir, `${run.id}-bridge.log`), readyPipe: true,
    args: [CLI, 'bridge', natsUrl, '--agent', run.id, '--socket', socket, '--shim-dir', shimDir, '--command', 'yes'],
  }, cleanup);
  const log = pino({ level: 'silent' });
  const bus = await connectBus({ url: natsUrl, name: 'splitbrain-bench-memory', log });
  const shims: ChildProcess[] = [];
  try {
    const report = await readyReport(bridge, BRIDGE_TIMEOUT_MS);
    if (!report.ok) throw new DaemonStartError(`splitbrain bridge did not start: ${report.message}: ${await logTail(bridge)}`);
    const client = new AgentClient(bus, run.id, { timeoutMs: 5000, log });
    const output = async (): Promise<NonNullable<AgentStats['output']>> => {
      const { output: kept } = await client.call('agent.stats', {});
      if (!kept) throw new Error('the agent reports no output budget');
      return kept;
    };
    for (let i = 0; i < STALLED_READERS; i++) {
      // stdout a pipe the bench never reads: the shim blocks on it as soon as it is full.
      shims.push(spawn(join(shimDir, 'yes'), [`stalled reader ${i}`], {
        env: { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: socket }, stdio: ['ignore', 'pipe', 'ignore'],
      }));
    }
    const spawned = performance.now();
    // Settled: past the grace and the agent's check after it (cuts come then: a reader is behind
    // from the first check that sees it so), and what is kept moved less than 1 MiB in 3 s.
    let last = -Infinity;
    let steadySince = performance.now();
    for (;;) {
      const { kept } = await output();
      if (Math.abs(kept - last) > 1024 * 1024) steadySince = performance.now();
      last = kept;
      const now = performance.now();
      if (now - spawned > GRACE_MS + 5000 && now - steadySince > 3000) break;
      if (now - spawned > SETTLE_TIMEOUT_MS) throw new Error(`what ${run.id} keeps did not settle within ${SETTLE_TIMEOUT_MS / 1000} s`);
      await sleep(500);
    }
    const settled = await output();
    const result: StalledResult = {
      label: run.label, budgetBytes: settled.budget, keptBytes: settled.kept, cuts: settled.cuts,
      agent: await procMemory(agent.pid), bridge: await procMemory(bridge.pid), settleS: (performance.now() - spawned) / 1000,
    };
    progress(`${STALLED_READERS} stalled readers, ${run.label}: agent keeps ${(result.keptBytes / 1048576).toFixed(0)} MiB, `
      + `${result.cuts} cut off, ${result.agent.resident.toFixed(0)} MiB resident`);
    return result;
  } finally {
    for (const shim of shims) shim.kill('SIGKILL');
    await bus.close();
    await bridge.stop();
    await agent.stop();
  }
}

export async function measureMemoryBench(workDir: string, natsUrl: string, cleanup: Cleanup, progress: (line: string) => void): Promise<MemoryBenchResults> {
  const started = performance.now();
  const dir = join(workDir, 'memory');
  await mkdir(dir);
  const idle = await idleAgent(dir, natsUrl, cleanup, progress);
  const stalled = [
    await stalledReaders(dir, natsUrl, { id: 'bench-stall-budget', label: 'default `--output-budget`', args: [] }, cleanup, progress),
    await stalledReaders(dir, natsUrl, {
      id: 'bench-stall-windows', label: '`--output-budget 8G`: every process its window, as far as it opened (at most 8 MiB)',
      args: ['--output-budget', '8G'],
    }, cleanup, progress),
  ];
  return { ...idle, stalled, durationS: (performance.now() - started) / 1000 };
}

const mib = (n: number) => `${n.toFixed(1)} MiB`;
const mibOfBytes = (n: number) => `${(n / 1048576).toFixed(0)} MiB`;

function cutsNote(s: StalledResult | undefined): string {
  if (!s || s.cuts === 0) return `none here: the ${STALLED_READERS} started before their output filled their shares`;
  return `${s.cuts} here`;
}

export function renderMemorySection(r: MemoryBenchResults | undefined, error: string | undefined, heading: string): string {
  const out = ['### Agent memory: idle, and with 100 stalled readers', '', heading, ''];
  if (!r) return [...out, `The memory part failed: ${error ?? 'unknown'}`].join('\n');
  const row = (label: string, m: ProcMemory) => [label, mib(m.resident), mib(m.private), mib(m.fileBacked), mib(m.proportional)];
  out.push(markdownTable(['`splitbrain agent`, idle', 'resident', 'private', 'file-backed (Node\'s code, shared)', 'proportional'], [
    row('2 s after start', r.idleEarly),
    row('20 s after start (settled)', r.idleSettled),
  ]), '');
  out.push('Goal: an idle agent under 60 MB resident. Resident is VmRSS; private is RssAnon, the agent\'s own heap and buffers; file-backed is RssFile, nearly all of it pages of Node\'s own binary (its code, its embedded snapshot and ICU data), which every Node process of the host shares; proportional is the Pss of /proc/PID/smaps_rollup, each shared page counted 1/N. Between 2 s and 20 s V8\'s memory reducer gives back what the agent\'s start (loading its modules) left in its heap. Where the rest goes is under Notes, "Agent memory".', '');
  out.push(markdownTable(['100 stalled readers', 'output the agent keeps', 'readers cut off', 'agent resident (peak)', 'agent private', 'bridge resident'],
    r.stalled.map((s) => [
      `${s.label} (${mibOfBytes(s.budgetBytes)})`, mibOfBytes(s.keptBytes), String(s.cuts),
      `${mib(s.agent.resident)} (${mib(s.agent.peak)})`, mib(s.agent.private), mib(s.bridge.resident),
    ])), '');
  out.push(`One \`splitbrain bridge\` runs ${STALLED_READERS} bridged \`yes\` through the static shim, whose stdout pipes the bench never reads: each shim blocks on its pipe and its bridge returns no more credit. Figures once what the agent keeps (\`agent.stats\`) has settled, past \`--output-grace\` (10 s), ${r.stalled.map((s) => `${s.settleS.toFixed(0)} s`).join(' and ')} after the last reader started. With the budget, each process may keep its share of it (the budget divided by the agent's processes, here 2.5 MiB): readers that filled a larger share before the others started would hold more than theirs, and be cut off, the fullest first, until the agent is within its budget (${cutsNote(r.stalled[0])}). A process's window opens from 1 MiB only as its master takes output (docs/architecture.md, "Output is pushed"): a reader that stalled early holds about that much, where each held 8 MiB before. The bridge keeps what it received and could not write to its shims: the master's side of the same window.`);
  return out.join('\n');
}
