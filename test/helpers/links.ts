/**
 * What the link tests look at from outside: the NATS server's message count, the port an agent
 * offers links on, and the connections to it.
 */
import assert from 'node:assert/strict';
import { run } from './processes.js';
import type { BareAgent } from './slave.js';

/** Messages the NATS server has taken in so far (its /varz). */
export async function natsMessages(monitorPort: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${monitorPort}/varz`);
  return ((await response.json()) as { in_msgs: number }).in_msgs;
}

/** The port the agent offers links on, from its log. */
export function linkPort(slave: BareAgent): number {
  const line = slave.agent.log().split('\n').find((l) => l.includes('links offered'));
  assert.ok(line, `the agent offers no links:\n${slave.agent.log()}`);
  return (JSON.parse(line) as { port: number }).port;
}

/** Established TCP connections to `port` on loopback. */
export async function connectionsTo(port: number): Promise<number> {
  const out = (await run('ss', ['-Htn', 'state', 'established', `( sport = :${port} )`])).stdout.trim();
  return out === '' ? 0 : out.split('\n').length;
}
