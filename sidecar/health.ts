/**
 * `splitbrain health`: exit 0 only while a sidecar serves its directory (compose's
 * healthcheck). It checks what a test would use: the health file of a live sidecar, both
 * mounts in the mount table, and a bridge that accepts a connection.
 */
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { isMounted } from '../mount/mount-watch.js';

const CONNECT_TIMEOUT_MS = 2000;

export const HEALTH_FILE = 'health.json';

/** What a sidecar writes to <dir>/health.json while it serves (its hostname is the slave's). */
export interface HealthReport {
  healthy: true;
  agentId: string;
  hostname: string;
  bootId: string;
  since: string;
  pid: number;
  /** Where the devices are mounted. */
  devices: string;
  /** Each --map: the slave's path and where it is offered. */
  maps: { slavePath: string; at: string }[];
}

/** Null when healthy, else what is wrong. */
export async function checkHealth(dir: string): Promise<string | null> {
  let report: HealthReport;
  try {
    report = JSON.parse(await readFile(join(dir, HEALTH_FILE), 'utf8')) as HealthReport;
  } catch {
    return `no sidecar serves ${dir} (no ${HEALTH_FILE})`;
  }
  try {
    process.kill(report.pid, 0);
  } catch {
    return `the sidecar (pid ${report.pid}) is gone`;
  }
  for (const path of [join(dir, 'slave'), report.devices, ...report.maps.map((m) => m.at)]) {
    if (!(await isMounted(path))) return `${path} is not mounted`;
  }
  const socket = join(dir, 'bridge.sock');
  const reachable = await new Promise<boolean>((resolve) => {
    const conn = connect(socket);
    const timer = setTimeout(() => { conn.destroy(); resolve(false); }, CONNECT_TIMEOUT_MS);
    conn.once('connect', () => { clearTimeout(timer); conn.destroy(); resolve(true); });
    conn.once('error', () => { clearTimeout(timer); resolve(false); });
  });
  return reachable ? null : `the bridge at ${socket} does not accept connections`;
}
