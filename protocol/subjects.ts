/**
 * NATS subjects. Every agent owns `splitbrain.<agentId>.>` and nothing else, so NATS subject
 * permissions can grant a master exactly the slaves it may reach. Op names contain one dot
 * (`fs.read`), so an op subject is `splitbrain.<agentId>.fs.read`.
 */
import { SUBJECT_ROOT } from './version.js';

/** All agents answer `agent.hello` here too, so a master can find the agents on a bus. */
export const DISCOVER_SUBJECT = `${SUBJECT_ROOT}._discover`;

// A NATS subject token: no dots, wildcards or whitespace; we also keep it printable and short.
const AGENT_ID = /^[A-Za-z0-9_-][A-Za-z0-9_-]{0,127}$/;

export function isValidAgentId(id: string): boolean {
  return AGENT_ID.test(id) && id !== '_discover';
}

/** A hostname made into an agent id: dots and other characters NATS reserves become '_'. */
export function agentIdFromHostname(hostname: string): string {
  const id = hostname.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 128);
  return id.length > 0 ? id : 'slave';
}

export function agentPrefix(agentId: string): string {
  return `${SUBJECT_ROOT}.${agentId}`;
}

export function opSubject(agentId: string, op: string): string {
  return `${agentPrefix(agentId)}.${op}`;
}

/** Wildcard an agent subscribes to. */
export function agentWildcard(agentId: string): string {
  return `${agentPrefix(agentId)}.>`;
}

/** The op named by a subject under `agentPrefix(agentId)`, or undefined. */
export function opFromSubject(agentId: string, subject: string): string | undefined {
  const prefix = `${agentPrefix(agentId)}.`;
  return subject.startsWith(prefix) ? subject.slice(prefix.length) : undefined;
}
