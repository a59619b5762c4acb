/**
 * The master's typed view of one agent: `call('fs.read', {...})` encodes with the protocol,
 * sends with a deadline, validates the reply and notices a restarted agent by its boot id.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import {
  DISCOVER_SUBJECT, ProtocolError, decodeReply, encodeRequest, opSubject,
  type HelloInfo, type OpName, type OpReply, type OpRequest,
} from '../protocol/index.js';
import type { Bus } from './bus.js';

export interface AgentClientOptions {
  /** Deadline of one request; past it the operation fails with EIO. */
  timeoutMs: number;
  log: Logger;
}

export class AgentClient {
  private seq = 0;
  private readonly clientId = randomBytes(6).toString('hex');
  private lastBoot: string | undefined;

  constructor(
    readonly bus: Bus,
    readonly agentId: string,
    private readonly options: AgentClientOptions,
  ) {}

  /** The boot id of the agent as of the last reply. */
  get bootId(): string | undefined {
    return this.lastBoot;
  }

  async call<K extends OpName>(
    op: K, args: OpRequest<K>, timeoutMs = this.options.timeoutMs,
  ): Promise<OpReply<K>> {
    // Ids are unique per client, so the agent can recognise a retried request.
    const id = `${this.clientId}:${++this.seq}`;
    const raw = await this.bus.request(opSubject(this.agentId, op), encodeRequest(op, id, args), timeoutMs);
    const reply = decodeReply(op, raw);
    this.noteBoot(reply.boot);
    if (!reply.ok) throw reply.error;
    return reply.result;
  }

  async hello(): Promise<HelloInfo> {
    return this.call('agent.hello', {});
  }

  private noteBoot(boot: string): void {
    if (this.lastBoot !== undefined && this.lastBoot !== boot) {
      this.options.log.warn({ agentId: this.agentId, previousBootId: this.lastBoot, bootId: boot },
        'agent restarted: its boot id changed');
    }
    this.lastBoot = boot;
  }
}

/** Asks every agent on the bus for its hello; replies that do not decode are skipped. */
export async function discoverAgents(bus: Bus, waitMs: number): Promise<HelloInfo[]> {
  const replies = await bus.requestAll(DISCOVER_SUBJECT, encodeRequest('agent.hello', 'discover', {}), waitMs);
  const agents: HelloInfo[] = [];
  for (const raw of replies) {
    try {
      const reply = decodeReply('agent.hello', raw);
      if (reply.ok) agents.push(reply.result); // decodeReply validated it against the hello schema
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
    }
  }
  return agents;
}

/** No agent, or more than one, answered discovery: the user must say which (--agent). */
export class NoAgentError extends Error {
  override name = 'NoAgentError';
}

const DISCOVERY_WAIT_MS = 500;

/** The only agent on the bus; a clear error when there is none or several. */
export async function chooseAgent(bus: Bus): Promise<string> {
  const agents = await discoverAgents(bus, DISCOVERY_WAIT_MS);
  if (agents.length === 1) return (agents[0] as HelloInfo).agentId;
  if (agents.length === 0) throw new NoAgentError('no agent answered on the bus; is `splitbrain agent` running?');
  const ids = agents.map((a) => `${a.agentId} (${a.hostname})`).join(', ');
  throw new NoAgentError(`several agents answer: ${ids}; choose one with --agent`);
}
