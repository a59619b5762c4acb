/** A protocol client straight on the bus, for tests that talk to an agent without a mount. */
import { pino } from 'pino';
import { AgentClient } from '../../transport/agent-client.js';
import { connectBus, type Bus } from '../../transport/bus.js';

export interface RawClient {
  bus: Bus;
  client: AgentClient;
  close(): Promise<void>;
}

export async function rawClient(natsUrl: string, agentId: string, timeoutMs = 5000): Promise<RawClient> {
  const log = pino({ level: 'silent' });
  const bus = await connectBus({ url: natsUrl, name: 'splitbrain-test', log });
  return { bus, client: new AgentClient(bus, agentId, { timeoutMs, log }), close: () => bus.close() };
}
