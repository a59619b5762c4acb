/**
 * The agent's Prometheus metrics (served with `--metrics HOST:PORT`, transport/metrics.ts):
 * operations by op and errno with their latency, bytes moved, operations in flight, processes
 * spawned, open handles.
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import { LATENCY_BUCKETS } from '../transport/metrics.js';

export const agentMetrics = {
  ops: new Counter({ name: 'splitbrain_agent_ops_total', help: 'Operations served, by op and errno (OK on success)', labelNames: ['op', 'errno'] }),
  latency: new Histogram({ name: 'splitbrain_agent_op_seconds', help: 'Time to serve an operation', labelNames: ['op'], buckets: LATENCY_BUCKETS }),
  inFlight: new Gauge({ name: 'splitbrain_agent_ops_in_flight', help: 'Operations being served' }),
  bytes: new Counter({ name: 'splitbrain_agent_bytes_total', help: 'File and device data moved, by direction', labelNames: ['direction'] }),
  spawned: new Counter({ name: 'splitbrain_agent_processes_spawned_total', help: 'Processes started for masters' }),
};

type HandleCounts = () => { files: number; devices: number; processes: number };
let countHandles: HandleCounts = () => ({ files: 0, devices: 0, processes: 0 });

new Gauge({
  name: 'splitbrain_agent_open_handles', help: 'Open handles, by kind', labelNames: ['kind'],
  collect() {
    const now = countHandles();
    this.set({ kind: 'file' }, now.files);
    this.set({ kind: 'device' }, now.devices);
    this.set({ kind: 'process' }, now.processes);
  },
});

/** Where the open-handles gauge reads its numbers when scraped (the running agent's tables). */
export function watchHandles(count: HandleCounts): void {
  countHandles = count;
}
