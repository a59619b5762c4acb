/**
 * NATS subjects. Every agent serves `splitbrain.<agentId>.>` and publishes only process output
 * under `splitbrain._out.<agentId>.>` and its change feed on `splitbrain._chg.<agentId>`, so NATS subject permissions can grant a master exactly
 * the slaves it may reach, and an agent exactly its own subjects (compose/nats/permissions.conf,
 * docs/security.md). Op names contain one dot (`fs.read`), so an op subject is
 * `splitbrain.<agentId>.fs.read`.
 */
import { SUBJECT_ROOT } from './version.js';

/** All agents answer `agent.hello` here too, so a master can find the agents on a bus. */
export const DISCOVER_SUBJECT = `${SUBJECT_ROOT}._discover`;

/** Where agents publish their change feed: `splitbrain._chg.<agentId>` (changes.ts). */
const CHANGES_ROOT = `${SUBJECT_ROOT}._chg`;

/** Where agents publish process output: `splitbrain._out.<agentId>.<token>`. */
const OUTPUT_ROOT = `${SUBJECT_ROOT}._out`;

// A NATS subject token: no dots, wildcards or whitespace; we also keep it printable and short.
// Ids starting with '_' are ours (`_discover`, `_out`), so no agent can be addressed by them.
const AGENT_ID = /^[A-Za-z0-9-][A-Za-z0-9_-]{0,127}$/;

export function isValidAgentId(id: string): boolean {
  return AGENT_ID.test(id);
}

/** A hostname made into an agent id: dots and other characters NATS reserves become '_'. */
export function agentIdFromHostname(hostname: string): string {
  const id = hostname.replace(/[^A-Za-z0-9_-]/g, '_').replace(/^_+/, '').slice(0, 128);
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

/** A new subject for one process's output from `agentId` (the master subscribes to it). */
export function outputSubject(agentId: string, token: string): string {
  return `${OUTPUT_ROOT}.${agentId}.${token}`;
}

/**
 * Whether `subject` is one of `agentId`'s output subjects: the only ones its agent publishes on,
 * whatever a spawn request names, so a master cannot make an agent send to someone else.
 */
export function isOutputSubjectOf(agentId: string, subject: string): boolean {
  const prefix = `${OUTPUT_ROOT}.${agentId}.`;
  return subject.startsWith(prefix) && /^[A-Za-z0-9_-]+$/.test(subject.slice(prefix.length));
}

/** The subject `agentId` publishes its change feed on; its masters subscribe to it. */
export function changeSubject(agentId: string): string {
  return `${CHANGES_ROOT}.${agentId}`;
}
