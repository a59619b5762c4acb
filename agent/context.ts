/**
 * What every op handler of the agent may use. Handlers get it as an argument, so a test can
 * build one around a temp dir without a bus.
 */
import type { Logger } from 'pino';
import type { Caller, HelloInfo, OpName, OpReply, OpRequest } from '../protocol/index.js';
import type { AgentBackend } from './backends/agent-backend.js';
import type { CallerAccess, SearchCache } from './caller-access.js';
import type { DeviceHandles } from './dev/device-handles.js';
import type { Links } from './links.js';
import type { LockLeases } from './lock-leases.js';
import type { Commits } from './fs/commits.js';
import type { HandleTable } from './fs/handle-table.js';
import type { ReadBuffers } from './fs/read-buffers.js';
import type { ReaddirCursors } from './fs/readdir-cursors.js';
import type { ProcessTable } from './proc/process-table.js';
import type { RootJail } from './root-jail.js';
import type { ExecPolicy } from './proc/exec-policy.js';
import type { AgentChangeFeed } from './watch/change-feed.js';

export interface AgentContext {
  /** The slave's operating system, behind one interface per service (backends/agent-backend.ts). */
  readonly backend: AgentBackend;
  readonly jail: RootJail;
  readonly handles: HandleTable;
  /** Durability of written data (fs/commits.ts). */
  readonly commits: Commits;
  /** flock locks masters hold, each let go when not asked for during a lease (lock-leases.ts). */
  readonly locks: LockLeases;
  readonly cursors: ReaddirCursors;
  readonly procs: ProcessTable;
  /** The --dev-root, when it is a directory. */
  readonly devJail: RootJail | undefined;
  readonly devices: DeviceHandles;
  /** Direct connections offered for pushed devices (--device-link), unless off or not possible. */
  readonly links?: Links;
  /** Whether --dev-allow lets masters open this path (relative to the dev root). */
  devAllow(relativePath: string): boolean;
  readonly readOnly: boolean;
  /** The agent runs as root: it acts as each request's caller (caller-access.ts). */
  readonly actsForCallers: boolean;
  /** Creating block and character device nodes through the mount (--allow-device-nodes). */
  readonly allowDeviceNodes: boolean;
  /** The checks and ownership of one request's caller, for paths of `jail` (default: the root's). */
  access(caller: Caller | undefined, jail?: RootJail): CallerAccess;
  /** Directory modes search checks remember (caller-access.ts); dispatch clears it on changes. */
  readonly searched: SearchCache;
  /** Which commands masters may run (proc/exec-policy.ts). */
  readonly execPolicy: ExecPolicy;
  /** Spawns enter the namespaces of this process (backends/linux/namespaces.ts). */
  readonly enterNamespaces?: number;
  /** The change feed: watches what requests name, answers fs.changes (watch/change-feed.ts). */
  readonly changes: AgentChangeFeed;
  /** Largest reply the bus accepts; data replies are sized to fit. */
  readonly maxPayload: number;
  /** Memory for `fs.read` replies, used again once sent (fs/read-buffers.ts). */
  readonly readBuffers: ReadBuffers;
  readonly log: Logger;
  hello(): HelloInfo;
  /** Requests being served now, hellos aside (dispatch.ts keeps it): what a hello reports as `busy`. */
  readonly serving: { count: number };
}

/**
 * `caller`: who the request is for, when the master said (protocol/caller.ts). `origin`: the
 * master that sent it, for the names it gives (fs.create's handle).
 */
export type OpHandler<K extends OpName> = (args: OpRequest<K>, ctx: AgentContext, caller?: Caller, origin?: string | null) => Promise<OpReply<K>>;

/** One handler per op. An op missing here answers ENOSYS. */
export type HandlerTable = { [K in OpName]?: OpHandler<K> };

/** Room kept in every reply for the envelope around the data. */
export const REPLY_OVERHEAD = 4096;
