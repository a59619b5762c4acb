/**
 * Who a bridged command runs as on the slave (`--exec-user`): the shim's caller (the default:
 * a test running as uid 1000 runs its bridged commands as uid 1000, as its files are), the
 * agent's own user, or fixed ids. The caller is who the shim says it is (shim/README.md): a
 * claim, since Node cannot ask the socket who its peer is (docs/security.md).
 */
import { MAX_SPAWN_GROUPS } from '../protocol/index.js';
import type { ShimCaller } from './shim-frames.js';

export type ExecUser = { kind: 'caller' } | { kind: 'agent' } | { kind: 'fixed'; uid: number; gid: number };

/** The ids a spawn asks the agent for; none of them: the agent's own user. */
export interface SpawnIds {
  uid?: number;
  gid?: number;
  groups?: number[];
}

export class ExecUserError extends Error {
  override name = 'ExecUserError';
}

/** (uid_t)-1 is no one's: set*id(2) read it as "unchanged". */
const MAX_ID = 0xfffffffe;
const FIXED = /^(\d{1,10})(?::(\d{1,10}))?$/;

/** `caller`, `agent`, `UID` or `UID:GID` (a lone UID's group is the same number, as useradd makes it). */
export function parseExecUser(value: string): ExecUser {
  if (value === 'caller' || value === 'agent') return { kind: value };
  const m = FIXED.exec(value);
  if (!m) throw new ExecUserError(`${JSON.stringify(value)}: expected caller, agent, UID or UID:GID (numbers)`);
  const uid = Number(m[1]);
  const gid = m[2] === undefined ? uid : Number(m[2]);
  if (uid > MAX_ID || gid > MAX_ID) throw new ExecUserError(`${JSON.stringify(value)}: ids go from 0 to ${MAX_ID}`);
  return { kind: 'fixed', uid, gid };
}

export function formatExecUser(user: ExecUser): string {
  return user.kind === 'fixed' ? `${user.uid}:${user.gid}` : user.kind;
}

/**
 * What a command's spawn asks for. `caller`: the caller's uid, gid and groups, unless the agent
 * is not root (it can only be itself, as sshfs and ssh run everything as the one login user),
 * the caller is root (it stays root: the agent's user), or the shim did not say (version 1).
 */
export function spawnIds(user: ExecUser, caller: ShimCaller | undefined, agentEuid: number): SpawnIds {
  if (user.kind === 'agent') return {};
  if (user.kind === 'fixed') return { uid: user.uid, gid: user.gid, groups: [user.gid] };
  if (caller === undefined || agentEuid !== 0 || caller.uid === 0) return {};
  const ids = [caller.uid, caller.gid, ...caller.groups];
  if (ids.some((n) => n > MAX_ID)) throw new ExecUserError(`the shim reported id ${MAX_ID + 1}, which no process has`);
  if (caller.groups.length > MAX_SPAWN_GROUPS) {
    throw new ExecUserError(`the caller has ${caller.groups.length} supplementary groups; at most ${MAX_SPAWN_GROUPS} can cross to the slave`);
  }
  return { uid: caller.uid, gid: caller.gid, groups: caller.groups };
}
