/**
 * What an operator asks of the agents on a bus (`splitbrain status`, `splitbrain top`): which
 * agents are there, and what one of them is doing. Discovery finds every agent that answers;
 * naming agents asks just those, so a user the bus grants no discovery can still ask its own.
 */
import { setTimeout } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { AgentStats, HelloInfo } from '../protocol/index.js';
import { AgentClient, discoverAgents } from './agent-client.js';
import type { Bus } from './bus.js';

export interface AgentStatus {
  readonly agentId: string;
  /** Its hello, or why it did not answer. */
  readonly hello?: HelloInfo;
  readonly error?: string;
}

export interface ListOptions {
  /** Ask these agents; none: every agent that answers discovery within `waitMs`. */
  agentIds: string[];
  waitMs: number;
  log: Logger;
}

export async function listAgents(bus: Bus, options: ListOptions): Promise<AgentStatus[]> {
  if (options.agentIds.length === 0) {
    const found = await discoverAgents(bus, options.waitMs);
    return found.map((hello) => ({ agentId: hello.agentId, hello }))
      .sort((a, b) => a.agentId.localeCompare(b.agentId));
  }
  return Promise.all(options.agentIds.map(async (agentId) => {
    const client = new AgentClient(bus, agentId, { timeoutMs: options.waitMs, slaveWaitMs: 0, log: options.log });
    try {
      return { agentId, hello: await client.hello() };
    } catch (err) {
      return { agentId, error: err instanceof Error ? err.message : String(err) };
    }
  }));
}

export interface OpRate {
  readonly op: string;
  readonly perSecond: number;
  readonly errorsPerSecond: number;
  /** Mean serving time of the ops in the interval, in milliseconds (0 when there were none). */
  readonly meanMs: number;
}

/** One agent's activity over one interval, as iostat or nfsstat show it. */
export interface ActivitySample {
  readonly seconds: number;
  /** Busiest first. */
  readonly ops: OpRate[];
  readonly opsPerSecond: number;
  readonly errorsPerSecond: number;
  readonly readBytesPerSecond: number;
  readonly writtenBytesPerSecond: number;
  readonly spawnedPerSecond: number;
  /** At the end of the interval. */
  readonly inFlight: number;
  readonly handles: AgentStats['handles'];
  /** Process output kept for masters at the end of the interval (absent from older agents). */
  readonly output?: AgentStats['output'];
  /** The agent restarted during the interval: its counters started again from zero. */
  readonly restarted: boolean;
}

const NO_STATS: AgentStats = {
  ops: [], bytesRead: 0, bytesWritten: 0, inFlight: 0, processesSpawned: 0, handles: { files: 0, devices: 0, processes: 0 },
};

/** The rates between two totals of one agent (`before` undefined: since it started). */
export function activityBetween(before: AgentStats | undefined, after: AgentStats, seconds: number): ActivitySample {
  const start = before ?? NO_STATS;
  const per = (n: number) => (seconds > 0 ? Math.max(0, n) / seconds : 0);
  const earlier = new Map(start.ops.map((o) => [o.op, o]));
  const ops = after.ops.map((o) => {
    const prior = earlier.get(o.op);
    const count = o.count - (prior?.count ?? 0);
    return {
      op: o.op, perSecond: per(count), errorsPerSecond: per(o.errors - (prior?.errors ?? 0)),
      meanMs: count > 0 ? ((o.seconds - (prior?.seconds ?? 0)) / count) * 1000 : 0,
    };
  }).filter((o) => o.perSecond > 0).sort((a, b) => b.perSecond - a.perSecond || a.op.localeCompare(b.op));
  return {
    seconds, ops,
    opsPerSecond: ops.reduce((sum, o) => sum + o.perSecond, 0),
    errorsPerSecond: ops.reduce((sum, o) => sum + o.errorsPerSecond, 0),
    readBytesPerSecond: per(after.bytesRead - start.bytesRead),
    writtenBytesPerSecond: per(after.bytesWritten - start.bytesWritten),
    spawnedPerSecond: per(after.processesSpawned - start.processesSpawned),
    inFlight: after.inFlight, handles: after.handles, restarted: false,
    ...(after.output === undefined ? {} : { output: after.output }),
  };
}

export interface WatchOptions {
  intervalMs: number;
  /** Samples to take before stopping (undefined: until `signal` aborts). */
  count?: number;
  signal: AbortSignal;
  log: Logger;
}

/**
 * Asks `agentId` for its totals every interval and yields the activity between two answers; an
 * interval the agent did not answer yields the reason instead, and the watch goes on (the agent
 * may come back, as a restarted slave does).
 */
export async function* watchActivity(bus: Bus, agentId: string, options: WatchOptions): AsyncGenerator<ActivitySample | Error> {
  const client = new AgentClient(bus, agentId, { timeoutMs: Math.max(options.intervalMs, 1000), slaveWaitMs: 0, log: options.log });
  let before: { stats: AgentStats; at: number; boot: string | undefined } | undefined;
  let taken = 0;
  const take = async () => {
    const stats = await client.call('agent.stats', {});
    return { stats, at: performance.now(), boot: client.bootId };
  };
  try {
    before = await take();
  } catch (err) {
    yield err instanceof Error ? err : new Error(String(err));
  }
  while (!options.signal.aborted && (options.count === undefined || taken < options.count)) {
    await setTimeout(options.intervalMs, undefined, { signal: options.signal }).catch(() => undefined); // aborted: stop
    if (options.signal.aborted) return;
    taken++;
    try {
      const now = await take();
      // Without an earlier answer there is nothing to measure from yet: the next interval will.
      if (before !== undefined) {
        const restarted = before.boot !== now.boot;
        yield { ...activityBetween(restarted ? undefined : before.stats, now.stats, (now.at - before.at) / 1000), restarted };
      }
      before = now;
    } catch (err) {
      yield err instanceof Error ? err : new Error(String(err));
    }
  }
}
