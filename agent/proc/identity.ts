/**
 * Who a spawned process may run as. A spawn may ask for a uid, a gid and supplementary groups; a
 * root agent gives it exactly those, a non-root agent can only run it as itself. How the ids
 * are taken is the backend's (ProcessesBackend.runAs).
 */
import { SlaveError } from '../../protocol/index.js';
import type { Identity } from '../backends/processes-backend.js';

/** The agent's own ids, as the kernel sees them. */
export interface AgentIds {
  euid: number;
  egid: number;
}

export function agentIds(): AgentIds {
  return { euid: process.geteuid?.() ?? 0, egid: process.getegid?.() ?? 0 };
}

/**
 * The identity to take, or undefined to run as the agent itself. A non-root agent asked for its
 * own uid and gid runs the process as itself (with its own groups: it cannot change them); asked
 * for anyone else, it refuses with EPERM, as setuid(2) would.
 */
export function spawnIdentity(asked: Identity, self: AgentIds): Identity | undefined {
  if (asked.uid === undefined && asked.gid === undefined && asked.groups === undefined) return undefined;
  if (self.euid === 0) return asked;
  const uid = asked.uid ?? self.euid;
  const gid = asked.gid ?? self.egid;
  if (uid === self.euid && gid === self.egid) return undefined;
  throw new SlaveError('EPERM', `the agent runs as uid ${self.euid} gid ${self.egid}, not as root: it cannot run `
    + `commands as uid ${uid} gid ${gid}`);
}
