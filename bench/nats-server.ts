/**
 * A throwaway nats-server on loopback; the kernel picks its ports (`-p -1`, `-m -1`), read from
 * its log. Its HTTP monitor tells how many messages and bytes went through it (the stream part's
 * messages per MiB).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';
import { startDaemon, waitUntil, type Daemon } from './daemon.js';

const START_TIMEOUT_MS = 10_000;
const LISTENING = /Listening for client connections on 127\.0\.0\.1:(\d+)/;
const MONITOR = /Starting http monitor on 127\.0\.0\.1:(\d+)/;

/** What went through the server since it started (its /varz). */
export interface ServerCounts {
  /** Messages published to it, and their payload bytes. */
  inMsgs: number;
  inBytes: number;
  /** Messages it delivered to subscribers. */
  outMsgs: number;
  outBytes: number;
}

export class MonitorError extends Error {
  override name = 'MonitorError';
}

export interface NatsServer {
  url: string;
  daemon: Daemon;
  counts(): Promise<ServerCounts>;
}

export async function startNatsServer(workDir: string, cleanup: Cleanup): Promise<NatsServer> {
  const logPath = join(workDir, 'nats-server.log');
  const daemon = startDaemon({
    label: 'nats-server', command: 'nats-server', args: ['-a', '127.0.0.1', '-p', '-1', '-m', '-1'], logPath,
  }, cleanup);
  const [port, monitorPort] = await waitUntil(daemon, 'listening ports in its log', START_TIMEOUT_MS, async () => {
    const log = await readFile(logPath, 'utf8').catch(() => '');
    const client = LISTENING.exec(log)?.[1];
    const monitor = MONITOR.exec(log)?.[1];
    return client !== undefined && monitor !== undefined ? [client, monitor] : undefined;
  });
  const counts = async (): Promise<ServerCounts> => {
    const response = await fetch(`http://127.0.0.1:${monitorPort}/varz`);
    if (!response.ok) throw new MonitorError(`nats-server's /varz answered ${response.status}`);
    const varz = (await response.json()) as Record<string, unknown>;
    const count = (key: string) => {
      const value = varz[key];
      if (typeof value !== 'number') throw new MonitorError(`nats-server's /varz has no number ${key}`);
      return value;
    };
    return { inMsgs: count('in_msgs'), inBytes: count('in_bytes'), outMsgs: count('out_msgs'), outBytes: count('out_bytes') };
  };
  return { url: `nats://127.0.0.1:${port}`, daemon, counts };
}
