/**
 * Who a spawned process runs as. A spawn may ask for a uid, a gid and supplementary groups; a
 * root agent gives it exactly those, a non-root agent can only run it as itself.
 *
 * The ids are taken by setpriv(1) (util-linux), which sets them and execs the command (no fork:
 * the pid we signal stays the command's), the same way for pipes and ptys. Node's and node-pty's
 * own uid/gid options cannot do groups: libuv calls setgroups(0) and drops them all.
 */
import { SlaveError } from '../../protocol/index.js';

export interface Identity {
  uid?: number;
  gid?: number;
  /** Exactly these supplementary groups; absent: none (as setgroups(0) left a process before). */
  groups?: number[];
}

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

/**
 * setpriv's argv that takes `identity` and execs `inner` ([file, ...args]). With `uid: false` the
 * uid is left to `inner` (nsenter must still be root to enter namespaces; it takes the uid last).
 */
export function setprivArgv(identity: Identity, inner: string[], options: { uid: boolean }): string[] {
  const groups = identity.groups ?? [];
  return [
    'setpriv',
    ...(options.uid && identity.uid !== undefined ? [`--reuid=${identity.uid}`] : []),
    ...(identity.gid === undefined ? [] : [`--regid=${identity.gid}`]),
    groups.length > 0 ? `--groups=${groups.join(',')}` : '--clear-groups',
    '--', ...inner,
  ];
}
