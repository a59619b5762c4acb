/**
 * A test farm's NATS deployment on loopback, for the cluster part of the bench: three clustered
 * servers (`hub-1`..3, where masters connect) and a leaf node (`leaf`, where a lab's agents
 * connect), which connects out to the hubs' leafnode ports, as compose/cluster.yml and
 * compose/lab-leaf.yml deploy it. Ports are picked free; every server is a daemon the cleanup
 * stops.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';
import { startDaemon, waitUntil } from './daemon.js';
import { freePort } from './free-port.js';

const START_TIMEOUT_MS = 15_000;

export interface NatsFarm {
  /** Every hub's client URL, comma-separated: what a master is given. */
  hubUrls: string;
  hubs: string[];
  leafUrl: string;
}

async function startServer(workDir: string, name: string, config: string, ready: RegExp, cleanup: Cleanup): Promise<void> {
  const configPath = join(workDir, `${name}.conf`);
  const logPath = join(workDir, `${name}.log`);
  await writeFile(configPath, config);
  const daemon = startDaemon({ label: `nats-server ${name}`, command: 'nats-server', args: ['-c', configPath], logPath }, cleanup);
  await waitUntil(daemon, `${name}: ${ready.source}`, START_TIMEOUT_MS,
    async () => (ready.test(await readFile(logPath, 'utf8').catch(() => '')) ? true : undefined));
}

export async function startNatsFarm(workDir: string, cleanup: Cleanup): Promise<NatsFarm> {
  const hubs: { client: number; cluster: number; leaf: number }[] = [];
  for (let i = 0; i < 3; i++) hubs.push({ client: await freePort(), cluster: await freePort(), leaf: await freePort() });
  const leafClient = await freePort();
  for (const [i, hub] of hubs.entries()) {
    const routes = hubs.filter((o) => o !== hub).map((o) => `"nats-route://127.0.0.1:${o.cluster}"`).join(', ');
    await startServer(workDir, `hub-${i + 1}`, `server_name: hub-${i + 1}
listen: 127.0.0.1:${hub.client}
cluster { name: bench-farm, listen: 127.0.0.1:${hub.cluster}, routes: [${routes}] }
leafnodes { listen: 127.0.0.1:${hub.leaf} }
`, /Server is ready/, cleanup);
  }
  const remotes = hubs.map((h) => `"nats-leaf://127.0.0.1:${h.leaf}"`).join(', ');
  await startServer(workDir, 'leaf', `server_name: leaf
listen: 127.0.0.1:${leafClient}
leafnodes { reconnect: 1, remotes: [ { urls: [${remotes}] } ] }
`, /Leafnode connection created/, cleanup);
  const hubUrls = hubs.map((h) => `nats://127.0.0.1:${h.client}`);
  return { hubUrls: hubUrls.join(','), hubs: hubUrls, leafUrl: `nats://127.0.0.1:${leafClient}` };
}
