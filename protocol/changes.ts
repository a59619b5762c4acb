/**
 * The change feed: what an agent publishes on `changeSubject(agentId)` when something on the
 * slave changes names or attributes that masters may cache (docs/protocol.md, "Change feed").
 *
 * A change is `[dir, name, kind]`, slave paths as everywhere in the protocol:
 *   [dir, name, 'entry']  the name now means another inode or none (created, removed, renamed);
 *                         `dir`'s own attributes (mtime, ctime, nlink, size) changed with it
 *   [dir, name, 'attr']   same inode, its attributes or data changed
 *   [dir, null, 'entry']  forget everything cached in `dir` (its watch ended, or was evicted)
 *   [dir, null, 'attr']   `dir`'s own attributes changed: only for the export root, which has
 *                         no parent to name it in
 *
 * `dir` and `name` are slave names as everywhere (protocol 2): a name that is not UTF-8 travels as
 * msgpack bin, its exact bytes, and is read back as the surrogateescape string (name-bytes.ts).
 *
 * `origins`, when present, runs parallel to `changes`: the master whose request made each change
 * (masters number their requests `<master id>:<n>`, docs/protocol.md), null where the slave made
 * it or nobody knows. That master applied the change to its own caches when its request was
 * answered and may skip it here; every other master applies it. Agents that cannot tell (no
 * fanotify) send no origins, and masters that do not know the field apply everything.
 *
 * Every change takes the next sequence number; so does a `lost` mark, so a master that missed
 * the message saying changes were lost still sees a gap. A message's `seq` is that of its last
 * change (or mark); a heartbeat (no changes) repeats the current one.
 */
import * as v from 'valibot';
import { LONG_PATH_MAX, NAME_MAX, nameFromBytes } from './name-bytes.js';
import { u53 } from './schema.js';

export const CHANGE_KINDS = ['entry', 'attr'] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

/** live: every change is reported; degraded: some may not be (masters use short timeouts); off: no feed. */
export const FEED_STATES = ['live', 'degraded', 'off'] as const;
export type FeedState = (typeof FEED_STATES)[number];

/** Why changes may have been missed: the mounts then forget everything they cached. */
export const LOST_REASONS = ['overflow', 'watch-failed', 'restart'] as const;
export type LostReason = (typeof LOST_REASONS)[number];

/** How the agent learns of changes, as `hello` and `status` show it (degraded and off as above). */
export const FEED_MODES = ['inotify', 'fanotify', 'degraded', 'off'] as const;
export type FeedMode = (typeof FEED_MODES)[number];

/** bin (bytes that are not UTF-8) read back as the surrogateescape string; longer bytes than any
 * path are left for the string check to refuse. */
const bytesAsName = (v: unknown) => (v instanceof Uint8Array && v.length <= LONG_PATH_MAX * 4 ? nameFromBytes(v) : v);
// A directory as long as a request may name (a mount older than LONG_PATH_MAX refuses the message
// and forgets what it cached, which is safe).
const dir = v.pipe(v.unknown(), v.transform(bytesAsName), v.string(), v.minLength(1), v.maxLength(LONG_PATH_MAX), v.startsWith('/'));
const name = v.pipe(v.unknown(), v.transform(bytesAsName), v.nullable(v.pipe(v.string(), v.minLength(1), v.maxLength(NAME_MAX))));

export const slaveChange = v.strictTuple([dir, name, v.picklist(CHANGE_KINDS)]);
export type SlaveChangeTuple = v.InferOutput<typeof slaveChange>;

/** Most changes in one message: the agent splits bigger batches to fit max_payload anyway. */
export const MAX_CHANGES_PER_MESSAGE = 65_536;

export const changeMessage = v.object({
  /** The agent's boot id: a new one means its sequence started again. */
  boot: v.pipe(v.string(), v.maxLength(64)),
  seq: u53,
  changes: v.pipe(v.array(slaveChange), v.maxLength(MAX_CHANGES_PER_MESSAGE)),
  state: v.picklist(FEED_STATES),
  lost: v.optional(v.picklist(LOST_REASONS)),
  origins: v.optional(v.pipe(v.array(v.nullable(v.pipe(v.string(), v.maxLength(64)))), v.maxLength(MAX_CHANGES_PER_MESSAGE))),
});
export type ChangeMessage = v.InferOutput<typeof changeMessage>;

/** The master that sent a request with id `requestId` (`<master id>:<n>`): its changes' origin. */
export function originOfRequest(requestId: string): string | null {
  const colon = requestId.lastIndexOf(':');
  return colon > 0 ? requestId.slice(0, colon) : null;
}

/** The first sequence number a message covers: its changes, and its `lost` mark, end at `seq`. */
export function firstSeqOf(message: ChangeMessage): number {
  return message.seq - message.changes.length - (message.lost === undefined ? 0 : 1) + 1;
}
