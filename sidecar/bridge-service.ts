/**
 * `splitbrain bridge`: connect to the slave's agent, fill the shim directory, and serve shims on
 * the bridge socket until stopped. The sidecar runs the same next to its mounts.
 */
import type { Logger } from 'pino';
import { AgentClient, chooseAgent } from '../transport/agent-client.js';
import { connectBus } from '../transport/bus.js';
import { Bridge } from './bridge.js';
import { BridgePolicy, DEFAULT_ENV_NAMES, DEFAULT_ENV_PREFIXES } from './bridge-policy.js';
import { AgentIdentity } from './bridge-identity.js';
import { formatExecUser, type ExecUser } from './exec-user.js';
import { ProcessClient } from './remote-process.js';
import { PythonFallbackError, slavePythonPath, writePythonFallback } from './python-fallback.js';
import { DEFAULT_KEEP, SHIM_NAME, fillShimDir, keepFilter, listSlaveCommands } from './shim-dir.js';

export interface BridgeServiceOptions {
  natsUrl: string;
  agentId?: string;
  socketPath: string;
  /** Where to put the shim and its command links; none: only the socket is served. */
  shimDir?: string;
  commands: string[];
  bridgeAll: boolean;
  keep: string[];
  /**
   * Link every executable on the slave's PATH into `fallbackDir` (default: the shim directory),
   * which goes at the END of the test's PATH: what the test's image has runs locally, anything
   * else on the slave.
   */
  bridgeMissing?: boolean;
  fallbackDir?: string;
  /** Write the Python fallback (python-fallback.ts) here; the test's PYTHONPATH starts with it. */
  pythonDir?: string;
  slaveMount?: string;
  defaultCwd: string;
  envNames: string[];
  envPrefixes: string[];
  /** Who bridged commands run as on the slave (--exec-user). */
  execUser: ExecUser;
  log: Logger;
  /** See BridgeOptions.afterCommand. */
  afterCommand?: (changeSeq: number | undefined) => Promise<void>;
  /** See BridgeOptions.beforeCommand. */
  beforeCommand?: () => Promise<void>;
  /** How long a request waits for an unreachable agent (default 60 s; 0: at once). */
  slaveWaitMs?: number;
  /** Requests and output on a session link once the agent offers one (default); false: the bus alone. */
  link?: boolean;
}

export interface RunningBridge {
  readonly agentId: string;
  /** The command links in the shim directory. */
  readonly commands: string[];
  /** The command links in the fallback directory (--bridge-missing). */
  readonly missing: string[];
  stop(): Promise<void>;
}

const REQUEST_TIMEOUT_MS = 15_000;

export async function startBridgeService(options: BridgeServiceOptions): Promise<RunningBridge> {
  const log = options.log.child({ component: 'bridge' });
  const bus = await connectBus({ url: options.natsUrl, name: 'splitbrain-bridge', log: log.child({ component: 'bus' }) });
  let linked: AgentClient | undefined;
  try {
    const agentId = options.agentId ?? await chooseAgent(bus);
    const client = new AgentClient(bus, agentId, { timeoutMs: REQUEST_TIMEOUT_MS, slaveWaitMs: options.slaveWaitMs, log });
    const hello = await client.hello({ slaveWaitMs: 0 });
    client.helloOnReconnect();
    // Bridged commands' requests, and their output, on a direct link once the agent offers one
    // (transport/session-link.ts): a streaming command's output crosses one TCP connection instead
    // of two hops through the NATS server. The bus carries everything until it is made, and after a break.
    if (options.link !== false && hello.capabilities.includes('agent.link')) {
      client.useLink();
      linked = client;
    }
    const identity = new AgentIdentity(options.execUser, hello, () => client.hello({ slaveWaitMs: 0 }), log);
    const procs = new ProcessClient(client, log);
    let commands: string[] = [];
    let missing: string[] = [];
    const fallbackDir = options.fallbackDir ?? options.shimDir;
    const slaveCommands = options.bridgeAll || options.bridgeMissing ? (await listSlaveCommands(procs)).filter((c) => c !== SHIM_NAME) : [];
    if (options.shimDir !== undefined) {
      const wanted = new Set(options.commands);
      if (options.bridgeAll) {
        const keep = keepFilter([...DEFAULT_KEEP, ...options.keep]);
        for (const command of slaveCommands) if (keep(command)) wanted.add(command);
      }
      // Missing mode into the shim directory itself (`splitbrain bridge`): it holds them all.
      if (options.bridgeMissing && fallbackDir === options.shimDir) for (const command of slaveCommands) wanted.add(command);
      commands = await fillShimDir(options.shimDir, wanted);
    }
    if (options.bridgeMissing && fallbackDir !== undefined) {
      missing = fallbackDir === options.shimDir ? commands : await fillShimDir(fallbackDir, slaveCommands);
      log.info({ dir: fallbackDir, commands: missing.length }, 'the slave\'s commands bridged where the test has none: '
        + 'this directory goes at the end of its PATH');
      log.debug({ commands: missing }, 'bridged where missing');
    }
    if (options.pythonDir !== undefined) {
      if (options.slaveMount === undefined) throw new PythonFallbackError('--python-fallback needs --slave-mount: where the test sees the slave\'s files');
      const paths = await writePythonFallback(options.pythonDir, options.slaveMount, hello.root, await slavePythonPath(procs));
      log.info({ dir: options.pythonDir, paths: paths.map(([seen]) => seen) }, 'python fallback: modules the test lacks come from '
        + 'the slave\'s sys.path (PYTHONPATH must start with this directory)');
    }
    const policy = new BridgePolicy({
      slaveMount: options.slaveMount, defaultCwd: options.defaultCwd,
      envNames: [...DEFAULT_ENV_NAMES, ...options.envNames],
      envPrefixes: [...DEFAULT_ENV_PREFIXES, ...options.envPrefixes],
    });
    const bridge = await Bridge.listen({
      socketPath: options.socketPath, procs, policy, identity, agentId, log,
      afterCommand: options.afterCommand, beforeCommand: options.beforeCommand,
    });
    log.info({
      agentId, hostname: hello.hostname, socket: options.socketPath, commands: commands.length,
      execUser: formatExecUser(options.execUser), agentEuid: hello.euid,
    }, 'bridge serving');
    return {
      agentId, commands, missing,
      async stop() {
        await bridge.close();
        procs.close();
        client.close();
        await bus.close();
      },
    };
  } catch (err) {
    linked?.close();
    await bus.close();
    throw err;
  }
}
