/** A throwaway nats-server on loopback; the kernel picks its port (`-p -1`), read from its log. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';
import { startDaemon, waitUntil, type Daemon } from './daemon.js';

const START_TIMEOUT_MS = 10_000;
const LISTENING = /Listening for client connections on 127\.0\.0\.1:(\d+)/;

export interface NatsServer {
  url: string;
  daemon: Daemon;
}

export async function startNatsServer(workDir: string, cleanup: Cleanup): Promise<NatsServer> {
  const logPath = join(workDir, 'nats-server.log');
  const daemon = startDaemon({
    label: 'nats-server', command: 'nats-server', args: ['-a', '127.0.0.1', '-p', '-1'], logPath,
  }, cleanup);
  const port = await waitUntil(daemon, 'listening port in its log', START_TIMEOUT_MS, async () => {
    const match = LISTENING.exec(await readFile(logPath, 'utf8').catch(() => ''));
    return match?.[1];
  });
  return { url: `nats://127.0.0.1:${port}`, daemon };
}
