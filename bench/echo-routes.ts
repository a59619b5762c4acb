/**
 * The ways the device bench reaches a terminal that echoes, side by side: the pty directly (the
 * floor), socat echoing over loopback TCP through a pipe (no terminal), socat relaying loopback
 * TCP to a pty (the reference: what one would set up by hand to reach a slave's serial console),
 * the least a relay through NATS can do (bench/nats-echo-relay.ts: the same processes as
 * splitbrain's route, none of its protocol), and splitbrain's device mount. Each terminal route
 * has a board of its own (bench/pty-board.py, a pty pair that echoes), so no route's bytes can
 * reach another's reader.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cleanup } from './cleanup.js';
import { startDaemon, waitUntil, type Daemon } from './daemon.js';
import { SLAVE_DEV_ROOT, startDeviceMount } from './device-mount.js';

export const ECHO_ROUTE_IDS = ['pty', 'socat-pipe', 'socat-pty', 'nats-relay', 'splitbrain'] as const;
export type EchoRouteId = (typeof ECHO_ROUTE_IDS)[number];

export const ECHO_ROUTE_LABELS: Record<EchoRouteId, string> = {
  'pty': 'the pty directly',
  'socat-pipe': 'socat TCP echo (`PIPE`)',
  'socat-pty': 'socat TCP → pty',
  'nats-relay': 'raw nats.js relay → pty',
  'splitbrain': 'splitbrain device mount → pty',
};

const BOARD = fileURLToPath(new URL('../../bench/pty-board.py', import.meta.url));
const NATS_RELAY = fileURLToPath(new URL('./nats-echo-relay.js', import.meta.url));
const START_TIMEOUT_MS = 10_000;
const TTY_LINE = /^(\/dev\/pts\/\d+)$/m;
const SOCAT_LISTENING = /listening on AF=2 127\.0\.0\.1:(\d+)/;
const RELAY_LISTENING = /^listening (\d+)$/m;
const RELAY_READY = /^ready$/m;

/** A board's terminal the device mount cannot reach. */
export class EchoRouteError extends Error {
  override name = 'EchoRouteError';
}

export interface EchoRoute {
  id: EchoRouteId;
  /** For bench/echo-client.py: a terminal's path, or `tcp:PORT` on 127.0.0.1. */
  where: string;
}

export interface EchoRoutes {
  routes: EchoRoute[];
  startErrors: Map<EchoRouteId, string>;
  /** In the order they were started; stopped once the device bench is done. */
  daemons: Daemon[];
  /** Of the agent and the mount, read for warnings after the run. */
  logs: { label: string; path: string }[];
}

/** A board, ready once it has printed its terminal's path (e.g. /dev/pts/3). */
async function startBoard(workDir: string, id: EchoRouteId, cleanup: Cleanup): Promise<{ daemon: Daemon; tty: string }> {
  const logPath = join(workDir, `device-board-${id}.log`);
  const daemon = startDaemon({ label: `pty board (${id})`, command: 'python3', args: ['-u', BOARD], logPath }, cleanup);
  const tty = await waitUntil(daemon, 'terminal path in its log', START_TIMEOUT_MS,
    async () => TTY_LINE.exec(await readFile(logPath, 'utf8').catch(() => ''))?.[1]);
  return { daemon, tty };
}

/**
 * socat listening on a port the kernel picks, read from its log (`-d -d`): probing the port
 * would use up the one connection it accepts. `address` is its other end.
 */
async function startSocat(workDir: string, id: EchoRouteId, address: string, cleanup: Cleanup): Promise<{ daemon: Daemon; port: string }> {
  const logPath = join(workDir, `device-socat-${id}.log`);
  const daemon = startDaemon({
    label: `socat (${id})`, command: 'socat', logPath,
    args: ['-d', '-d', 'TCP-LISTEN:0,bind=127.0.0.1,reuseaddr,nodelay', address],
  }, cleanup);
  const port = await waitUntil(daemon, 'listening port in its log', START_TIMEOUT_MS,
    async () => SOCAT_LISTENING.exec(await readFile(logPath, 'utf8').catch(() => ''))?.[1]);
  return { daemon, port };
}

/**
 * The floor of any relay through NATS (bench/nats-echo-relay.ts): its device side on the
 * board's terminal, its master side listening on a port for the client.
 */
async function startNatsRelay(workDir: string, natsUrl: string, tty: string, cleanup: Cleanup): Promise<{ daemons: Daemon[]; port: string }> {
  const prefix = `bench.echo.${process.pid}`;
  const deviceLog = join(workDir, 'device-nats-relay-device.log');
  const device = startDaemon({ label: 'nats relay (device side)', command: process.execPath, logPath: deviceLog,
    args: [NATS_RELAY, 'device', natsUrl, prefix, tty] }, cleanup);
  await waitUntil(device, 'ready in its log', START_TIMEOUT_MS,
    async () => RELAY_READY.test(await readFile(deviceLog, 'utf8').catch(() => '')) || undefined);
  const masterLog = join(workDir, 'device-nats-relay-master.log');
  const master = startDaemon({ label: 'nats relay (master side)', command: process.execPath, logPath: masterLog,
    args: [NATS_RELAY, 'master', natsUrl, prefix] }, cleanup);
  const port = await waitUntil(master, 'listening port in its log', START_TIMEOUT_MS,
    async () => RELAY_LISTENING.exec(await readFile(masterLog, 'utf8').catch(() => ''))?.[1]);
  return { daemons: [device, master], port };
}

export async function startEchoRoutes(workDir: string, natsUrl: string, cleanup: Cleanup): Promise<EchoRoutes> {
  const result: EchoRoutes = { routes: [], startErrors: new Map(), daemons: [], logs: [] };
  const attempt = async (id: EchoRouteId, start: () => Promise<string>) => {
    try {
      result.routes.push({ id, where: await start() });
    } catch (err) {
      result.startErrors.set(id, (err as Error).message);
    }
  };
  const board = async (id: EchoRouteId) => {
    const started = await startBoard(workDir, id, cleanup);
    result.daemons.push(started.daemon);
    return started.tty;
  };
  const socat = async (id: EchoRouteId, address: string) => {
    const started = await startSocat(workDir, id, address, cleanup);
    result.daemons.push(started.daemon);
    return `tcp:${started.port}`;
  };

  await attempt('pty', () => board('pty'));
  await attempt('socat-pipe', () => socat('socat-pipe', 'PIPE'));
  // noctty: socat runs in a session of its own, where a terminal it opens would become its
  // controlling terminal.
  await attempt('socat-pty', async () => socat('socat-pty', `OPEN:${await board('socat-pty')},noctty`));
  await attempt('nats-relay', async () => {
    const started = await startNatsRelay(workDir, natsUrl, await board('nats-relay'), cleanup);
    result.daemons.push(...started.daemons);
    return `tcp:${started.port}`;
  });
  await attempt('splitbrain', async () => {
    const tty = await board('splitbrain');
    if (!tty.startsWith(`${SLAVE_DEV_ROOT}/`)) throw new EchoRouteError(`${tty} is not under the agent's ${SLAVE_DEV_ROOT}`);
    const mount = await startDeviceMount(workDir, natsUrl, cleanup);
    result.daemons.push(...mount.daemons);
    result.logs.push(...mount.logs);
    return join(mount.mountPath, tty.slice(SLAVE_DEV_ROOT.length + 1));
  });
  return result;
}
