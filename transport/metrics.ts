/**
 * Prometheus metrics (metric-registry.ts), for `--metrics HOST:PORT`: what the bus and the
 * requests through it did. The agent adds its own (agent/agent-metrics.ts). Metrics are counted
 * whether or not anyone scrapes them; the counting is a map update per request.
 */
import type { Server } from 'node:http';
import { Counter, EXPOSITION_CONTENT_TYPE, Gauge, Histogram, exposition } from './metric-registry.js';

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The master side: requests to the agent by op and outcome (an errno, OK, or unreachable). */
export const clientMetrics = {
  requests: new Counter({ name: 'splitbrain_client_requests_total', help: 'Requests to the agent, by op and result', labelNames: ['op', 'result'] }),
  latency: new Histogram({ name: 'splitbrain_client_request_seconds', help: 'Request latency, tries included', labelNames: ['op'], buckets: LATENCY_BUCKETS }),
  inFlight: new Gauge({ name: 'splitbrain_client_requests_in_flight', help: 'Requests waiting for the agent' }),
  retries: new Counter({ name: 'splitbrain_client_retries_total', help: 'Requests sent again while the agent was unreachable' }),
  restarts: new Counter({ name: 'splitbrain_agent_boot_changes_total', help: 'Agent restarts seen (boot id changes)' }),
  lateRefusals: new Counter({
    name: 'splitbrain_mount_late_refusals_total', labelNames: ['op', 'errno'],
    help: 'Changes the mount answered at once that the agent refused after all (reported at fsync or close)',
  }),
};

export const busMetrics = {
  reconnects: new Counter({ name: 'splitbrain_bus_reconnects_total', help: 'Reconnections to the NATS server' }),
  disconnects: new Counter({ name: 'splitbrain_bus_disconnects_total', help: 'Losses of the NATS connection' }),
};

export { LATENCY_BUCKETS };

/** Serves /metrics on `hostPort` (HOST:PORT; the host defaults to 127.0.0.1). */
export async function serveMetrics(hostPort: string): Promise<Server> {
  const at = hostPort.lastIndexOf(':');
  const host = at > 0 ? hostPort.slice(0, at) : '127.0.0.1';
  const port = Number(at >= 0 ? hostPort.slice(at + 1) : hostPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--metrics ${hostPort}: expected HOST:PORT`);
  // Loaded here: a process that serves no metrics does not carry an HTTP server.
  const { createServer } = await import('node:http');
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('only /metrics here\n');
      return;
    }
    res.writeHead(200, { 'content-type': EXPOSITION_CONTENT_TYPE }).end(exposition());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  server.unref();
  return server;
}
