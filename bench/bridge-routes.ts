/**
 * The process bench's slave side for splitbrain: an agent of its own (its own id and temp root,
 * on the run's nats-server) and `splitbrain bridge` serving the static exec shim on a temp socket,
 * with `true` and `head` bridged. Gives the shim route and the `splitbrain exec` CLI route.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MOUNT_NODE_FLAGS } from '../cli/node-flags.js';
import { CLI, startAgent } from './agent-daemon.js';
import type { Cleanup } from './cleanup.js';
import { DaemonStartError, logTail, readyReport, startDaemon, type Daemon } from './daemon.js';
import { headZeros, type Route } from './exec-routes.js';

const AGENT_ID = 'bench-exec';
const BRIDGE_TIMEOUT_MS = 20_000;
/** What the bench runs through the shim; each gets a link in the shim directory. */
const BRIDGED = ['true', 'head'];

export interface BridgeRoutes {
  routes: Route[];
  /** Stopped once the process bench is done, so they cost the filesystem workloads nothing. */
  daemons: Daemon[];
  logs: { label: string; path: string }[];
  /** The agent's and the bridge's, whose CPU the stream part measures. */
  pids: { agent: number; bridge: number };
}

/** `agentId`: another than the process bench's, for a second set in the same run (the stream part). */
export async function startBridgeRoutes(workDir: string, natsUrl: string, cleanup: Cleanup, agentId = AGENT_ID): Promise<BridgeRoutes> {
  const name = agentId === AGENT_ID ? 'exec' : agentId;
  const slavePath = join(workDir, `${name}-slave`);
  const shimDir = join(workDir, `${name}-shim`);
  const socket = join(workDir, `${name}-bridge.sock`);
  await mkdir(slavePath);
  const agentLog = join(workDir, `${name}-agent.log`);
  const agent = await startAgent({ label: `${name} agent`, natsUrl, agentId, slavePath, logPath: agentLog }, cleanup);
  const bridgeLog = join(workDir, `${name}-bridge.log`);
  const bridge = startDaemon({
    label: 'splitbrain bridge', command: process.execPath, logPath: bridgeLog, readyPipe: true,
    // With the Node flags the sidecar image runs its bridge with (cli/node-flags.ts).
    args: [...MOUNT_NODE_FLAGS, CLI, 'bridge', natsUrl, '--agent', agentId, '--socket', socket, '--shim-dir', shimDir,
      ...BRIDGED.flatMap((c) => ['--command', c])],
  }, cleanup);
  const report = await readyReport(bridge, BRIDGE_TIMEOUT_MS);
  if (!report.ok) {
    throw new DaemonStartError(`splitbrain bridge did not start: ${report.message}: ${await logTail(bridge)}`);
  }
  const shimEnv = { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: socket };
  // --agent names the agent: no discovery wait in the CLI's figures.
  const cli = [process.execPath, CLI, 'exec', natsUrl, '--agent', agentId, '--'];
  return {
    routes: [
      {
        id: 'shim', trueArgv: [join(shimDir, 'true')], env: shimEnv,
        stream: (bytes) => headZeros([join(shimDir, 'head')], bytes),
      },
      {
        id: 'exec-cli', trueArgv: [...cli, 'true'], env: process.env,
        stream: (bytes) => headZeros([...cli, 'head'], bytes),
      },
    ],
    daemons: [bridge, agent],
    pids: { agent: agent.pid, bridge: bridge.pid },
    logs: [{ label: `${name} agent`, path: agentLog }, { label: 'splitbrain bridge', path: bridgeLog }],
  };
}
