/**
 * `splitbrain agent` as a real CLI process serving a temp dir, ready once it answers its hello
 * over the bus. The mount target and the process bench each start one, with ids of their own.
 */
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { AGENT_NODE_FLAGS } from '../cli/node-flags.js';
import { AgentClient } from '../transport/agent-client.js';
import { connectBus } from '../transport/bus.js';
import type { Cleanup } from './cleanup.js';
import { startDaemon, waitUntil, type Daemon } from './daemon.js';

export const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const AGENT_TIMEOUT_MS = 15_000;

export interface AgentOptions {
  label: string;
  natsUrl: string;
  agentId: string;
  /** The agent's --root: the slave-side directory it serves. */
  slavePath: string;
  logPath: string;
  /** More `splitbrain agent` options (the memory part's --output-budget). */
  args?: string[];
}

/** Polls the agent's hello over the bus until it answers. */
async function waitForAgent(agent: Daemon, natsUrl: string, agentId: string): Promise<void> {
  const log = pino({ level: 'silent' });
  const bus = await connectBus({ url: natsUrl, name: 'splitbrain-bench-probe', log });
  try {
    const client = new AgentClient(bus, agentId, { timeoutMs: 1000, log });
    await waitUntil(agent, 'hello reply', AGENT_TIMEOUT_MS, () => client.hello().then(() => true, () => undefined));
  } finally {
    await bus.close();
  }
}

export async function startAgent(options: AgentOptions, cleanup: Cleanup): Promise<Daemon> {
  const agent = startDaemon({
    label: options.label, command: process.execPath, logPath: options.logPath,
    // Started as the agent image and the systemd unit start it (cli/node-flags.ts).
    args: [...AGENT_NODE_FLAGS, CLI, 'agent', '--nats', options.natsUrl, '--id', options.agentId, '--root', options.slavePath, ...(options.args ?? [])],
  }, cleanup);
  await waitForAgent(agent, options.natsUrl, options.agentId);
  return agent;
}
