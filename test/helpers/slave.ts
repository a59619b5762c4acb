/**
 * A whole slave for integration tests: nats-server, an agent process exporting a temp dir, and
 * a `splitbrain mount` process serving it on another temp dir. Everything is started by PID and
 * stopped in `stop()`, mounts included.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chmod, mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMounted } from '../../mount/mount-watch.js';
import { startNats, type NatsServer } from './nats-server.js';
import { CLI, run, startReportingCli, stopProcess, waitFor } from './processes.js';

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly id: string;
  /** The last 20,000 characters it logged. */
  log(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `splitbrain agent` and waits until it answers on the bus. */
export async function startAgentProcess(
  natsUrl: string, id: string, root: string, extraArgs: string[] = [], spawnOptions: SpawnOptions = {}, wrapper: string[] = [],
): Promise<AgentProcess> {
  const argv = [...wrapper, process.execPath, CLI, 'agent', '--nats', natsUrl, '--id', id, '--root', root, '--log-level', 'info', ...extraArgs];
  const child = spawn(argv[0] ?? '', argv.slice(1), {
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
  return { child, id, log: () => log, stop: async (signal = 'SIGTERM') => { await stopProcess(child, signal); } };
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
  const { child, log } = await startReportingCli('mount', ['mount', natsUrl, mountPath, '-f', ...args], {}, 20_000);
  return {
    child, mountPath, log,
    async stop() {
      await stopProcess(child);
      if (await isMounted(mountPath)) await run('fusermount', ['-uz', mountPath]);
    },
  };
}

/** Resolves once the mount logged its agent's change feed live (it caches long from then on); started with `--log-level info` or below. */
export async function waitForLiveFeed(mount: MountProcess): Promise<void> {
  await waitFor('the change feed live', () => mount.log().includes('slave change feed live'), 10_000, 20);
}

/** A nats-server and an agent exporting `<tmp>/root`, with no mount. */
export interface BareAgent {
  readonly nats: NatsServer;
  readonly agent: AgentProcess;
  /** The agent's export root (the slave side). */
  readonly root: string;
  /** A temp dir for the test, holding `root`; removed by `stop()`. */
  readonly tmp: string;
  stop(): Promise<void>;
}

export interface BareAgentOptions {
  id?: string;
  agentArgs?: string[];
  agentSpawn?: SpawnOptions;
  /** A command the agent runs under, which execs it ("$0" "$@"): e.g. unshare with a hostname set. */
  agentWrapper?: string[];
  /** The agent's environment, once its export root is known (default: ours). */
  agentEnv?: (root: string, tmp: string) => NodeJS.ProcessEnv;
  /** nats-server's own arguments (e.g. `-m PORT` for its monitoring endpoints). */
  natsArgs?: string[];
  /** Fills the export root (or the temp dir around it) before the agent starts. */
  prepare?: (root: string, tmp: string) => Promise<void>;
}

/**
 * Removes a test's directory: by GNU rm, which walks by descriptors, since a test may leave a tree
 * deeper than PATH_MAX (long-paths.test.ts), whose files Node's recursive rm names by whole paths.
 */
export async function removeTree(dir: string): Promise<void> {
  const result = await run('rm', ['-rf', dir]);
  if (result.code !== 0) throw new Error(`rm -rf ${dir}: ${result.stderr}`);
}

export async function startBareAgent(options: BareAgentOptions = {}): Promise<BareAgent> {
  const tmp = await mkdtemp(join(tmpdir(), 'splitbrain-test-'));
  await chmod(tmp, 0o755); // an agent may run as an unprivileged user
  const root = join(tmp, 'root');
  await mkdir(root);
  let nats: NatsServer | undefined;
  try {
    await options.prepare?.(root, tmp);
    nats = await startNats(options.natsArgs);
    const spawnOptions = options.agentEnv ? { ...options.agentSpawn, env: options.agentEnv(root, tmp) } : options.agentSpawn;
    const agent = await startAgentProcess(nats.url, options.id ?? 'test-slave', root, options.agentArgs, spawnOptions, options.agentWrapper);
    const started = nats;
    return {
      nats: started, agent, root, tmp,
      async stop() {
        await agent.stop();
        await started.stop();
        await removeTree(tmp);
      },
    };
  } catch (err) {
    await nats?.stop();
    await removeTree(tmp);
    throw err;
  }
}

export interface Slave extends BareAgent {
  readonly mount: MountProcess;
  /** Where the master sees the slave's root. */
  readonly mnt: string;
}

/** The agent's options (all of BareAgentOptions), and the mount's arguments after `--agent ID`. */
export interface SlaveOptions extends BareAgentOptions {
  mountArgs?: string[];
}

export async function startSlave(options: SlaveOptions = {}): Promise<Slave> {
  const { mountArgs, ...agentOptions } = options;
  const bare = await startBareAgent(agentOptions);
  const mnt = join(bare.tmp, 'mnt');
  try {
    await mkdir(mnt);
    const mount = await startMountProcess(bare.nats.url, mnt, ['--agent', bare.agent.id, ...(mountArgs ?? [])]);
    return {
      ...bare, mount, mnt,
      async stop() {
        await mount.stop();
        await bare.stop();
      },
    };
  } catch (err) {
    await bare.stop();
    throw err;
  }
}

/**
 * A slave whose export holds `small`: a tmpfs of `size` mounted there before the agent starts
 * (another filesystem of the slave's, soon full, without some of ext4's calls). Its change feed
 * is live (the mount logs at info level at least). `stop` unmounts it after the mount is gone.
 */
export async function startSlaveWithTmpfs(options: SlaveOptions, size: string): Promise<Slave & { readonly small: string }> {
  let small: string | undefined;
  const unmountSmall = async () => { if (small) await run('umount', ['-l', small]); };
  let slave: Slave;
  try {
    slave = await startSlave({
      mountArgs: ['--log-level', 'info'], // waitForLiveFeed reads the log
      ...options,
      prepare: async (root, tmp) => {
        await options.prepare?.(root, tmp);
        small = join(root, 'small');
        await mkdir(small);
        await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'splitbrain-test', small]);
      },
    });
  } catch (err) {
    await unmountSmall();
    throw err;
  }
  const started = slave;
  const stop = async () => {
    await started.mount.stop(); // before the tmpfs below its export goes
    await unmountSmall();
    await started.stop();
  };
  try {
    await waitForLiveFeed(started.mount);
  } catch (err) {
    await stop();
    throw err;
  }
  return { ...started, small: small as string, stop };
}
