/**
 * `splitbrain run`: compose/docker-compose.yml from code, for one test image. Starts the sidecar
 * for the slave, waits until it is healthy, runs the test container with the slave's files,
 * devices, commands and hostname, streams its output, and returns its exit status. Everything it
 * created (both containers, the shared directory and any mount left in it) is removed at the
 * end: after success, failure, or SIGINT/SIGTERM.
 *
 * Exit status: the test's; 125 when the run could not be set up (as `docker run`); 130 or 143
 * when interrupted.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import Docker from 'dockerode';
import type { Logger } from 'pino';
import type { ExecUser } from '../sidecar/exec-user.js';
import type { HealthReport } from '../sidecar/health.js';
import type { BusAuth } from '../transport/bus-auth.js';
import { sidecarContainer, testContainer } from './containers.js';
import { prepareShareDir, releaseShareDir } from './share-dir.js';

export const SETUP_FAILED = 125;
const HEALTH_POLL_MS = 250;
const STOP_GRACE_S = 10;

export interface RunOptions {
  slave: string;
  agentId?: string;
  image: string;
  command: string[];
  sidecarImage: string;
  /** Host directory (on a shared mount) under which the run's shared directory is made. */
  shareRoot: string;
  networkMode: string;
  commands: string[];
  bridgeAll: boolean;
  bridgeMissing: boolean;
  pythonFallback: boolean;
  keep: string[];
  /** Who bridged commands run as on the slave (the sidecar's --exec-user). */
  execUser: ExecUser;
  /** Slave directories to show the test at its own paths. */
  maps: { slavePath: string; target: string }[];
  slaveAt: string;
  env: string[];
  tty: boolean;
  interactive: boolean;
  startTimeoutMs: number;
  logLevel: string;
  /** NATS credentials and TLS for the sidecar. */
  auth: BusAuth;
  log: Logger;
  stdout?: Writable;
  stderr?: Writable;
}

export class RunSetupError extends Error {}

export async function runTest(options: RunOptions): Promise<number> {
  const { log } = options;
  const docker = new Docker();
  const id = `splitbrain-run-${randomBytes(4).toString('hex')}`;
  const labels = { 'io.splitbrain.run': id };
  const created: Docker.Container[] = [];
  let shareDir: string | undefined;
  let interrupted: NodeJS.Signals | undefined;
  let onInterrupt = () => {};
  const interrupt = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = signal;
    log.warn({ signal }, 'interrupted: stopping the test and cleaning up');
    onInterrupt();
  };
  const onSigint = () => interrupt('SIGINT');
  const onSigterm = () => interrupt('SIGTERM');
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  const interruptedStatus = () => (interrupted === 'SIGINT' ? 130 : 143);
  const check = () => { if (interrupted) throw new RunSetupError(`interrupted by ${interrupted}`); };

  try {
    await docker.ping().catch((err: Error) => {
      throw new RunSetupError(`no Docker engine answers (${err.message}); start one (scripts/docker-setup.sh does)`);
    });
    const testImage = await ensureImage(docker, options.image, log);
    await ensureImage(docker, options.sidecarImage, log);
    check();
    shareDir = await prepareShareDir(options.shareRoot, id);

    const sidecar = await docker.createContainer(sidecarContainer({
      name: `${id}-sidecar`, image: options.sidecarImage, shareDir, networkMode: options.networkMode, labels,
      slave: options.slave, agentId: options.agentId, commands: options.commands, bridgeAll: options.bridgeAll,
      bridgeMissing: options.bridgeMissing, pythonFallback: options.pythonFallback,
      keep: options.keep, execUser: options.execUser, maps: options.maps.map((m) => m.slavePath), slaveAt: options.slaveAt,
      logLevel: options.logLevel,
      auth: options.auth,
    }));
    created.push(sidecar);
    await sidecar.start();
    log.info({ container: sidecar.id.slice(0, 12), slave: options.slave }, 'sidecar started');
    const health = await waitHealthy(sidecar, shareDir, options.startTimeoutMs, () => interrupted !== undefined);
    check();
    log.info({ hostname: health.hostname, agentId: health.agentId }, 'sidecar healthy');

    const test = await docker.createContainer(testContainer({
      name: `${id}-test`, image: options.image, command: options.command, shareDir, networkMode: options.networkMode,
      labels, hostname: health.hostname, imagePath: imagePath(testImage), pythonFallback: options.pythonFallback, imagePythonPath: imageEnv(testImage, 'PYTHONPATH'),
      env: options.env, slaveAt: options.slaveAt,
      maps: options.maps, tty: options.tty, interactive: options.interactive,
    }));
    created.push(test);
    const stream = await test.attach({ stream: true, stdin: options.interactive, stdout: true, stderr: true, hijack: true });
    const stdout = options.stdout ?? process.stdout;
    const stderr = options.stderr ?? process.stderr;
    const drained = new Promise<void>((resolve) => { stream.on('end', resolve); stream.on('close', resolve); stream.on('error', () => resolve()); });
    if (options.tty) stream.pipe(stdout, { end: false });
    else docker.modem.demuxStream(stream, stdout, stderr);
    if (options.interactive) process.stdin.pipe(stream);
    onInterrupt = () => { test.stop({ t: STOP_GRACE_S }).catch(() => undefined); };
    await test.start();
    if (interrupted) onInterrupt();
    const result = (await test.wait()) as { StatusCode?: number };
    await Promise.race([drained, new Promise((r) => setTimeout(r, 2000))]);
    if (options.interactive) process.stdin.unpipe(stream);
    return interrupted ? interruptedStatus() : result.StatusCode ?? SETUP_FAILED;
  } catch (err) {
    if (interrupted) return interruptedStatus();
    if (err instanceof RunSetupError) {
      log.debug({ err }, 'setup failed');
      process.stderr.write(`splitbrain: ${err.message}\n`);
      return SETUP_FAILED;
    }
    throw err;
  } finally {
    await cleanUp(created, shareDir, log);
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
  }
}

/** The image's inspect data, pulled first when the engine does not have it. */
async function ensureImage(docker: Docker, name: string, log: Logger): Promise<Docker.ImageInspectInfo> {
  try {
    return await docker.getImage(name).inspect();
  } catch {
    log.info({ image: name }, 'pulling');
    try {
      const progress = await docker.pull(name);
      await new Promise<void>((resolve, reject) => {
        docker.modem.followProgress(progress, (err: Error | null) => (err ? reject(err) : resolve()));
      });
      return await docker.getImage(name).inspect();
    } catch (err) {
      throw new RunSetupError(`image ${name}: not here and not pulled (${(err as Error).message})`);
    }
  }
}

function imageEnv(image: Docker.ImageInspectInfo, name: string): string | undefined {
  return image.Config.Env?.find((e) => e.startsWith(`${name}=`))?.slice(name.length + 1);
}

function imagePath(image: Docker.ImageInspectInfo): string {
  return imageEnv(image, 'PATH') ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
}

async function waitHealthy(sidecar: Docker.Container, shareDir: string, timeoutMs: number, stop: () => boolean): Promise<HealthReport> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = (await sidecar.inspect()).State;
    const logs = async () => printable(await sidecar.logs({ stdout: true, stderr: true, tail: 20 }));
    if (!state.Running) throw new RunSetupError(`the sidecar exited with status ${state.ExitCode}:\n${await logs()}`);
    if (state.Health?.Status === 'healthy') {
      return JSON.parse(await readFile(join(shareDir, 'health.json'), 'utf8')) as HealthReport;
    }
    if (stop()) throw new RunSetupError('interrupted');
    if (Date.now() > deadline) {
      const last = state.Health?.Log?.at(-1)?.Output?.trim() ?? '';
      throw new RunSetupError(`the sidecar was not healthy within ${timeoutMs / 1000} s${last ? ` (${last})` : ''}; its log:\n${await logs()}`);
    }
    await new Promise((r) => setTimeout(r, HEALTH_POLL_MS));
  }
}

/** The text of Docker's multiplexed log stream (each frame: stream, 3 zero bytes, length, data). */
function printable(logs: Buffer): string {
  const parts: Buffer[] = [];
  for (let at = 0; at + 8 <= logs.length;) {
    const length = logs.readUInt32BE(at + 4);
    parts.push(logs.subarray(at + 8, at + 8 + length));
    at += 8 + length;
  }
  return Buffer.concat(parts).toString('utf8').trim();
}

async function cleanUp(created: Docker.Container[], shareDir: string | undefined, log: Logger): Promise<void> {
  // The test first, then the sidecar with time to unmount cleanly, then whatever is left.
  for (const container of [...created].reverse()) {
    await container.stop({ t: STOP_GRACE_S }).catch(() => undefined);
    await container.remove({ force: true, v: true }).catch((err: Error) => {
      if (!/no such container/i.test(err.message)) log.warn({ err, container: container.id }, 'could not remove container');
    });
  }
  if (shareDir) {
    await releaseShareDir(shareDir).catch((err: unknown) => log.warn({ err, shareDir }, 'could not remove the shared directory'));
  }
}
