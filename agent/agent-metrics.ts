/**
 * The agent's Prometheus metrics (served with `--metrics HOST:PORT`, transport/metrics.ts):
 * operations by op and errno with their latency, bytes moved, operations in flight, processes
 * spawned, open handles, process output kept (proc/output-budget.ts), links and their frames (links.ts).
 */
import type { AgentStats } from '../protocol/index.js';
import { Counter, Gauge, Histogram } from '../transport/metric-registry.js';
import { LATENCY_BUCKETS } from '../transport/metrics.js';

export const agentMetrics = {
  ops: new Counter({ name: 'splitbrain_agent_ops_total', help: 'Operations served, by op and errno (OK on success)', labelNames: ['op', 'errno'] }),
  latency: new Histogram({ name: 'splitbrain_agent_op_seconds', help: 'Time to serve an operation', labelNames: ['op'], buckets: LATENCY_BUCKETS }),
  inFlight: new Gauge({ name: 'splitbrain_agent_ops_in_flight', help: 'Operations being served' }),
  bytes: new Counter({ name: 'splitbrain_agent_bytes_total', help: 'File and device data moved, by direction', labelNames: ['direction'] }),
  spawned: new Counter({ name: 'splitbrain_agent_processes_spawned_total', help: 'Processes started for masters' }),
  linkFrames: new Counter({ name: 'splitbrain_agent_link_frames_total', help: 'Frames on links (requests received, replies and events sent), by kind of link', labelNames: ['link'] }),
  links: new Counter({ name: 'splitbrain_agent_links_total', help: 'Links made, by kind', labelNames: ['link'] }),
  outputCuts: new Counter({ name: 'splitbrain_agent_output_cuts_total', help: 'Processes cut off because their masters fell behind the output budget' }),
};

type HandleCounts = () => { files: number; devices: number; processes: number };
let countHandles: HandleCounts = () => ({ files: 0, devices: 0, processes: 0 });

new Gauge({
  name: 'splitbrain_agent_open_handles', help: 'Open handles, by kind', labelNames: ['kind'],
  collect(gauge) {
    const now = countHandles();
    gauge.set({ kind: 'file' }, now.files);
    gauge.set({ kind: 'device' }, now.devices);
    gauge.set({ kind: 'process' }, now.processes);
  },
});

/** Where the open-handles gauge reads its numbers when scraped (the running agent's tables). */
export function watchHandles(count: HandleCounts): void {
  countHandles = count;
}

type OutputCounts = () => NonNullable<AgentStats['output']>;
let countOutput: OutputCounts = () => ({ kept: 0, budget: 0, cuts: 0 });

new Gauge({
  name: 'splitbrain_agent_output_kept_bytes', help: 'Process output kept until its masters have it, all processes',
  collect: (gauge) => gauge.set({}, countOutput().kept),
});
new Gauge({
  name: 'splitbrain_agent_output_budget_bytes', help: 'The most process output the agent keeps (--output-budget)',
  collect: (gauge) => gauge.set({}, countOutput().budget),
});

/** Where the output gauges read their numbers (proc/output-budget.ts). */
export function watchOutput(count: OutputCounts): void {
  countOutput = count;
}

/** The same numbers as `agent.stats` answers them: one source for /metrics and the bus. */
export function statsSnapshot(): AgentStats {
  const byOp = new Map<string, { op: string; count: number; errors: number; seconds: number }>();
  const entry = (op: string) => {
    let found = byOp.get(op);
    if (!found) byOp.set(op, found = { op, count: 0, errors: 0, seconds: 0 });
    return found;
  };
  for (const { labels, value } of agentMetrics.ops.samples()) {
    const counted = entry(String(labels.op));
    counted.count += value;
    if (labels.errno !== 'OK' && labels.errno !== 'replayed') counted.errors += value;
  }
  for (const { labels, value, metricName } of agentMetrics.latency.samples()) {
    if (metricName === 'splitbrain_agent_op_seconds_sum') entry(String(labels.op)).seconds += value;
  }
  const bytes = agentMetrics.bytes.samples();
  const moved = (direction: string) => bytes.find((v) => v.labels.direction === direction)?.value ?? 0;
  return {
    ops: [...byOp.values()].filter((o) => o.count > 0),
    bytesRead: moved('read'),
    bytesWritten: moved('written'),
    // Not counting the agent.stats request that asks.
    inFlight: Math.max(0, (agentMetrics.inFlight.samples()[0]?.value ?? 1) - 1),
    processesSpawned: agentMetrics.spawned.samples()[0]?.value ?? 0,
    handles: countHandles(),
    output: countOutput(),
    links: {
      made: agentMetrics.links.samples().reduce((sum, s) => sum + s.value, 0),
      frames: agentMetrics.linkFrames.samples().reduce((sum, s) => sum + s.value, 0),
    },
  };
}
