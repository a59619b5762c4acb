/**
 * Messages that did not cross the NATS server: the frames an agent's links carried (requests in,
 * replies and events out: agent.stats `links.frames`), so that a workload's message count is the
 * same measure whether the mount's requests went on the bus or on its session link.
 */
import { pino } from 'pino';
import { AgentClient } from '../transport/agent-client.js';
import { connectBus } from '../transport/bus.js';
import { AgentUnreachableError } from '../transport/errors.js';

/** The link frames `agentId` has carried since it started (0 for an agent that reports none, or is not there). */
export async function linkFrames(natsUrl: string, agentId: string): Promise<number> {
  const log = pino({ level: 'silent' });
  const bus = await connectBus({ url: natsUrl, name: 'splitbrain-bench-stats', log });
  try {
    const stats = await new AgentClient(bus, agentId, { timeoutMs: 5000, log }).call('agent.stats', {}).catch((err: unknown) => {
      // Not started (yet): nothing carried.
      if (err instanceof AgentUnreachableError && err.reason === 'no-responders') return undefined;
      throw err;
    });
    return stats?.links?.frames ?? 0;
  } finally {
    await bus.close();
  }
}
