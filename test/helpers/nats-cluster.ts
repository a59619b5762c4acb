/**
 * A NATS deployment on loopback, as a test farm has one: three clustered servers (`hub-1`..3,
 * where the masters connect) and a leaf node (`leaf`, where a lab's agents connect), which
 * connects out to every hub's leafnode port. Real nats-server processes on ports picked free;
 * each can be killed and started again on the same ports, as a failing server would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { stopProcess, waitFor } from './processes.js';

export interface ClusterServer {
  readonly name: string;
  readonly url: string;
  /** Its monitoring port (/varz, /routez, /leafz). */
  readonly monitorPort: number;
  /** Where leaf nodes connect to it (hubs only). */
  readonly leafPort?: number;
  /** Kills it (SIGKILL, as a crash) and waits for its exit. */
  kill(): Promise<void>;
  /** Starts it again on the same ports; resolves once it accepts clients. */
  start(): Promise<void>;
  log(): string;
}

export interface NatsCluster {
  readonly hubs: ClusterServer[];
  readonly leaf: ClusterServer;
  /** Every hub's URL, comma-separated: what a master is given. */
  readonly hubUrls: string;
  /** Resolves once every hub routes to the others and the leaf is connected to a hub. */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

interface Ports { client: number; cluster: number; leaf: number; monitor: number }

function server(name: string, configPath: string, config: string, clientPort: number, monitorPort: number, leafPort?: number): ClusterServer {
  let child: ChildProcess | undefined;
  let log = '';
  return {
    name,
    url: `nats://127.0.0.1:${clientPort}`,
    monitorPort,
    leafPort,
    log: () => log,
    async start() {
      await writeFile(configPath, config);
      const started = spawn('nats-server', ['-c', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = started;
      started.stderr?.on('data', (d: Buffer) => { log = (log + d.toString()).slice(-50_000); });
      await waitFor(`${name} to accept clients`, () => {
        if (started.exitCode !== null) throw new Error(`nats-server ${name} exited with ${started.exitCode}:\n${log}`);
        return log.includes('Server is ready');
      }, 10_000, 20);
    },
    async kill() {
      if (child && child.exitCode === null) await stopProcess(child, 'SIGKILL');
      child = undefined;
    },
  };
}

async function monitor<T>(port: number, path: string): Promise<T | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return (await res.json()) as T;
  } catch {
    return undefined;
  }
}

/**
 * Ports are picked free before the servers start, and a server's own outgoing connections
 * (routes, the leaf's) take ephemeral ports that may be one of them: then a server fails to
 * listen, and the whole cluster is started again on other ports.
 */
export async function startCluster(dir: string, attempts = 3): Promise<NatsCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startClusterOnce(dir);
    } catch (err) {
      if (attempt >= attempts || !/exited with/.test((err as Error).message)) throw err;
    }
  }
}

async function startClusterOnce(dir: string): Promise<NatsCluster> {
  const ports: Ports[] = [];
  for (let i = 0; i < 4; i++) ports.push({ client: await freePort(), cluster: await freePort(), leaf: await freePort(), monitor: await freePort() });
  const hubPorts = ports.slice(0, 3);
  const leafPorts = ports[3] as Ports;
  const hubs = hubPorts.map((p, i) => {
    const routes = hubPorts.filter((o) => o !== p).map((o) => `"nats-route://127.0.0.1:${o.cluster}"`).join(', ');
    const config = `server_name: hub-${i + 1}
listen: 127.0.0.1:${p.client}
http: 127.0.0.1:${p.monitor}
cluster { name: test-farm, listen: 127.0.0.1:${p.cluster}, routes: [${routes}] }
leafnodes { listen: 127.0.0.1:${p.leaf} }
`;
    return server(`hub-${i + 1}`, join(dir, `hub-${i + 1}.conf`), config, p.client, p.monitor, p.leaf);
  });
  // The leaf connects out to every hub (one at a time; to another when its hub goes away).
  const remotes = hubPorts.map((p) => `"nats-leaf://127.0.0.1:${p.leaf}"`).join(', ');
  const leafConfig = `server_name: leaf
listen: 127.0.0.1:${leafPorts.client}
http: 127.0.0.1:${leafPorts.monitor}
leafnodes { reconnect: 1, remotes: [ { urls: [${remotes}] } ] }
`;
  const leaf = server('leaf', join(dir, 'leaf.conf'), leafConfig, leafPorts.client, leafPorts.monitor);
  const all = [...hubs, leaf];
  try {
    for (const s of all) await s.start();
  } catch (err) {
    for (const s of all) await s.kill();
    throw err;
  }
  const cluster: NatsCluster = {
    hubs, leaf, hubUrls: hubs.map((h) => h.url).join(','),
    async settled() {
      await waitFor('the cluster routed and the leaf node connected', async () => {
        for (const p of hubPorts) {
          const routez = await monitor<{ num_routes: number }>(p.monitor, '/routez');
          if ((routez?.num_routes ?? 0) < 2) return false;
        }
        const leafz = await monitor<{ leafnodes: number }>(leafPorts.monitor, '/leafz');
        return (leafz?.leafnodes ?? 0) >= 1;
      }, 20_000, 100);
    },
    async stop() {
      for (const s of all) await s.kill();
    },
  };
  await cluster.settled();
  return cluster;
}

/** The hub the leaf node is connected to now (undefined while it is connecting). */
export async function leafHub(cluster: NatsCluster): Promise<ClusterServer | undefined> {
  // The leaf's /leafz names the remote end of its connection by address: the hub's leafnode port.
  const leafz = await monitor<{ leafs?: { port?: number }[] | null }>(cluster.leaf.monitorPort, '/leafz');
  const port = leafz?.leafs?.[0]?.port;
  return cluster.hubs.find((h) => h.leafPort === port);
}
