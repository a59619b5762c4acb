/**
 * A whole slave for integration tests: nats-server, an agent process exporting a temp dir, and
 * a `splitbrain mount` process serving it on another temp dir. Everything is started by PID and
 * stopped in `stop()`, mounts included.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { START_REPORT_FD, readStartReport, startReportEnv } from '../../cli/start-report.js';
import { isMounted } from '../../mount/mount-watch.js';
import { startNats, type NatsServer } from './nats-server.js';
import { CLI, run, stopProcess, waitFor } from './processes.js';

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly id: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `splitbrain agent` and waits until it answers on the bus. */
export async function startAgentProcess(natsUrl: string, id: string, root: string, extraArgs: string[] = [], spawnOptions: SpawnOptions = {}): Promise<AgentProcess> {
  const child = spawn(process.execPath, [CLI, 'agent', '--nats', natsUrl, '--id', id, '--root', root, '--log-level', 'info', ...extraArgs], {
    stdio: ['ignore', 'ignore', 'pipe'], ...spawnOptions,
  });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => { log = (log + d.toString()).slice(-20_000); });
  try {
    await waitFor('agent to serve', () => log.includes('agent serving') || child.exitCode !== null, 15_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  if (child.exitCode !== null) throw new Error(`agent exited with ${child.exitCode}:\n${log}`);
  return { child, id, stop: async (signal = 'SIGTERM') => { await stopProcess(child, signal); } };
}

export interface MountProcess {
  readonly child: ChildProcess;
  readonly mountPath: string;
  /** What the mount process logged (warn and above unless logLevel was given). */
  log(): string;
  stop(): Promise<void>;
}

/** Runs `splitbrain mount -f` and resolves once it reports the mount ready. */
export async function startMountProcess(natsUrl: string, mountPath: string, args: string[] = []): Promise<MountProcess> {
  const child = spawn(process.execPath, [CLI, 'mount', natsUrl, mountPath, '-f', ...args], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...startReportEnv() },
  });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => { log = (log + d.toString()).slice(-50_000); });
  const report = await readStartReport(child.stdio[START_REPORT_FD] as Readable, 20_000);
  if (!report.ok) {
    child.kill('SIGKILL');
    throw new Error(`mount failed: ${report.message}\n${log}`);
  }
  return {
    child, mountPath, log: () => log,
    async stop() {
      await stopProcess(child);
      if (await isMounted(mountPath)) await run('fusermount', ['-uz', mountPath]);
    },
  };
}

export interface Slave {
  readonly nats: NatsServer;
  readonly agent: AgentProcess;
  readonly mount: MountProcess;
  /** The agent's export root (the slave side). */
  readonly root: string;
  /** Where the master sees it. */
  readonly mnt: string;
  readonly tmp: string;
  stop(): Promise<void>;
}

export interface SlaveOptions {
  agentArgs?: string[];
  mountArgs?: string[];
  agentSpawn?: SpawnOptions;
}

export async function startSlave(options: SlaveOptions = {}): Promise<Slave> {
  const tmp = await mkdtemp(join(tmpdir(), 'splitbrain-test-'));
  await chmod(tmp, 0o755); // an agent may run as an unprivileged user
  const root = join(tmp, 'root');
  const mnt = join(tmp, 'mnt');
  await run('mkdir', ['-p', root, mnt]);
  const nats = await startNats();
  let agent: AgentProcess | undefined;
  try {
    agent = await startAgentProcess(nats.url, 'test-slave', root, options.agentArgs, options.agentSpawn);
    const mount = await startMountProcess(nats.url, mnt, ['--agent', 'test-slave', ...(options.mountArgs ?? [])]);
    return {
      nats, agent, mount, root, mnt, tmp,
      async stop() {
        await mount.stop();
        await agent?.stop();
        await nats.stop();
        await rm(tmp, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await agent?.stop();
    await nats.stop();
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
