/**
 * The slave side: connects to the bus and serves this slave's filesystem and processes under
 * its agent id.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname, platform, release, totalmem } from 'node:os';
import type { Logger } from 'pino';
import {
  DISCOVER_SUBJECT, isLoopbackAddress, MASTER_HANDLE_OPENS_CAPABILITY, MASTER_HANDLES_CAPABILITY, OP_NAMES, RENAME_EXCHANGE_CAPABILITY, RENAME_NOREPLACE_CAPABILITY, LONG_PATHS_CAPABILITY, PROTOCOL_VERSION, agentWildcard, changeSubject, opFromSubject, opSubject, type HelloInfo, type OpName,
} from '../protocol/index.js';
import { decodeHellos, helloRequest } from '../transport/agent-client.js';
import { AgentUnreachableError } from '../transport/errors.js';
import { connectBus, type Bus } from '../transport/bus.js';
import { REPLY_OVERHEAD, type AgentContext } from './context.js';
import { createDispatcher, type Dispatcher } from './dispatch.js';
import { HandleTable } from './fs/handle-table.js';
import { ReadBuffers } from './fs/read-buffers.js';
import { ReaddirCursors } from './fs/readdir-cursors.js';
import { DEFAULT_DEV_ALLOW } from './dev/dev-allow.js';
import { globFilter } from './path-globs.js';
import { Commits, dropUnsyncedWrites } from './fs/commits.js';
import { LockLeases } from './lock-leases.js';
import { watchHandles, watchOutput } from './agent-metrics.js';
import type { ExecPolicy } from './proc/exec-policy.js';

/** Ops that set file times: the first one loads what exact times need (checkExactTimes). */
const TIME_OPS: ReadonlySet<string> = new Set(['fs.utimens', 'fs.futimens']);

/** Unsynced bytes past which a commit starts at once. */
const COMMIT_THRESHOLD_BYTES = 32 * 1024 * 1024;
/** How long a flock lock a master stops asking for lasts (lock-leases.ts): NFSv4's usual lease is 90 s. */
const DEFAULT_LOCK_LEASE_MS = 60_000;
/** Reply buffers the agent keeps for `fs.read` (fs/read-buffers.ts), about 1 MiB each. */
const READ_BUFFERS = 16;
import { backendFor } from './backends/agent-backend.js';
import { DeviceHandles } from './dev/device-handles.js';
import { Links, type LinkSetting, type ReplyWritten } from './links.js';
import { handlers } from './handlers.js';
import { ProcessTable } from './proc/process-table.js';
import { DEFAULT_OUTPUT_GRACE_MS, defaultOutputBudget } from './proc/output-budget.js';
import { CallerAccess, SearchCache } from './caller-access.js';
import { RootJail } from './root-jail.js';
import { AgentChangeFeed, defaultWatchMax } from './watch/change-feed.js';
import type { WatchMode } from './backends/change-watch-backend.js';

export { WATCH_MODES, type WatchMode } from './backends/change-watch-backend.js';
export type { LinkSetting } from './links.js';

export interface AgentOptions {
  natsUrl: string;
  agentId: string;
  root: string;
  readOnly: boolean;
  /** Most files the agent keeps open for masters at once. */
  maxHandles?: number;
  /** How long a process lives once its master stops renewing it (see proc/process-table.ts). */
  procLeaseMs?: number;
  /** How long a flock lock lasts once its master stops asking for it (lock-leases.ts; default 60 s). */
  lockLeaseMs?: number;
  /** The devices served to device mounts (default /dev). */
  devRoot?: string;
  /** Globs of device paths (relative to devRoot) masters may open (default: dev/dev-allow.ts). */
  devAllow?: string[];
  /**
   * Run spawned processes in the mount, UTS, IPC, network and cgroup namespaces of this process
   * (1: the host's, for an agent in a container that shares the host's PID namespace and has the
   * host's / as its root; see backends/linux/namespaces.ts).
   */
  enterNamespaces?: number;
  /** Which commands masters may run (default: all). */
  execPolicy?: ExecPolicy;
  /** How often written data is made durable in the background (fs/commits.ts); default 2 s. */
  commitIntervalMs?: number;
  /** This software's version, reported by hello. */
  version?: string;
  /** Let masters create block and character device nodes (mknod) on the slave. */
  allowDeviceNodes?: boolean;
  /** Most directories the change feed watches (default: defaultWatchMax); 0: no feed. */
  watchMax?: number;
  /** The change watcher binary (default: the one built next to this code). */
  watchHelper?: string;
  /** How the change feed learns of changes (default auto: fanotify where allowed, else inotify). */
  watchMode?: WatchMode;
  /**
   * Process output kept for masters that have not received it, all processes together (bytes;
   * default: proc/output-budget.ts), and how long one may stay behind it before it is cut off.
   */
  outputBudget?: number;
  outputGraceMs?: number;
  /** Where direct connections for masters' requests and device streams are offered (default auto: links.ts). */
  link?: LinkSetting;
  /** Where masters are told to connect for links, when not where the agent listens (--link-offer). */
  linkOffer?: { host: string; port: number };
  log: Logger;
}

export interface RunningAgent {
  readonly info: HelloInfo;
  /**
   * Settles with the reason when another agent, started earlier, is found serving this id too
   * (this one must stop); with undefined once the agent is stopped without that happening.
   */
  readonly displaced: Promise<Error | undefined>;
  stop(): Promise<void>;
}

/**
 * The links' listener, where `setting` says (auto: the address the NATS server sees this agent
 * at), offered at `offer` when given. None when off, or when it cannot listen there (an address
 * behind NAT is not this machine's): masters then stay on the bus, as with an agent that has no links.
 */
async function offerLinks(
  setting: LinkSetting, offer: { host: string; port: number } | undefined, bus: Bus, dispatch: Dispatcher, log: Logger, replyWritten: ReplyWritten,
): Promise<Links | undefined> {
  if (setting === 'off') return undefined;
  const where = setting === 'auto' ? { host: bus.clientIp, port: 0 } : setting;
  if (where.host === undefined) {
    log.info('no links: the NATS server did not say where it sees this agent (--link HOST sets it)');
    return undefined;
  }
  // Reached over loopback, the server is on this machine, and masters reach it at one of this
  // machine's other addresses: listen on all of them, offer loopback (protocol/link.ts, linkHost).
  const listenHost = setting === 'auto' && isLoopbackAddress(where.host) ? (where.host.includes(':') && !where.host.startsWith('::ffff:') ? '::' : '0.0.0.0') : where.host;
  try {
    // The largest frame: a bus message, and room for the frame's head.
    return await Links.listen(listenHost, where.port, dispatch, bus.maxPayload + 1024, log, offer ?? { host: where.host }, replyWritten);
  } catch (err) {
    log.info({ err, host: where.host, port: where.port }, 'no links: cannot listen there; masters stay on the bus');
    return undefined;
  }
}

async function readHostBootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
}

/** Another agent serves this agent's id: two would both answer every request (issue: "one id, one agent"). */
export class AgentIdTakenError extends Error {
  override name = 'AgentIdTakenError';
}

/** How long the check after subscribing waits for every agent serving the id to answer. */
const TAKEN_ID_WAIT_MS = 300;

function describeAgent(other: HelloInfo): string {
  const where = other.server === undefined ? '' : `, connected to ${other.server.name || other.server.url}`;
  return `pid ${other.pid} on ${other.hostname} (root ${other.root}, boot ${other.bootId}, up since ${new Date(other.startedAt).toISOString()}${where})`;
}

/**
 * Refuses to serve an id another agent serves anywhere on the bus (a cluster, its leaf nodes).
 * Before subscribing, one request: NATS answers "no responders" at once when nobody serves it.
 * After subscribing (`serving`), every agent on the id answers: another one that started
 * earlier (or at the same moment with a smaller boot id) keeps the id, this one stops.
 * A bus that does not let the agent ask its own id (docs/security.md) skips the check, saying so.
 */
async function refuseTakenId(bus: Bus, info: HelloInfo, log: Logger, serving = false, again = false): Promise<void> {
  const subject = opSubject(info.agentId, 'agent.hello');
  const hello = helloRequest(`${info.bootId}:id-check`);
  let replies: Uint8Array[];
  try {
    replies = serving ? await bus.requestAll(subject, hello, TAKEN_ID_WAIT_MS) : [await bus.request(subject, hello, 2000)];
  } catch (err) {
    if (err instanceof AgentUnreachableError && err.reason === 'no-responders') return;
    // Said once; the checks that follow (watchForTwin) would only repeat it.
    if (again) log.debug({ err }, 'could not check whether another agent serves this id');
    else log.warn({ err }, 'could not check whether another agent serves this id');
    return;
  }
  for (const other of decodeHellos(replies)) {
    if (other.bootId === info.bootId) continue;
    const earlier = other.startedAt < info.startedAt || (other.startedAt === info.startedAt && other.bootId < info.bootId);
    if (!serving || earlier) {
      throw new AgentIdTakenError(`agent id '${info.agentId}' is already served on this bus, by ${describeAgent(other)}: `
        + 'two agents with one id would both answer every request. Stop that agent, or start this one with another --id');
    }
  }
}

/** When the agent looks again for another agent on its id: soon after starting, then now and then. */
const TWIN_CHECKS_MS = [0, 1000, 3000, 10_000];
const TWIN_CHECK_EVERY_MS = 60_000;

function watchForTwin(bus: Bus, info: HelloInfo, log: Logger): { displaced: Promise<Error | undefined>; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let settle: (err: Error | undefined) => void = () => undefined;
  const displaced = new Promise<Error | undefined>((resolve) => { settle = resolve; });
  let stopped = false;
  const check = (round: number): void => {
    timer = setTimeout(() => {
      refuseTakenId(bus, info, log, true, round > 0).then(() => {
        if (!stopped) check(round + 1);
      }, (err: unknown) => {
        if (stopped) return;
        log.error({ err }, 'another agent serves this id: stopping');
        stopped = true;
        settle(err instanceof Error ? err : new Error(String(err)));
      });
    }, TWIN_CHECKS_MS[round] ?? TWIN_CHECK_EVERY_MS);
  };
  check(0);
  return {
    displaced,
    stop() {
      stopped = true;
      clearTimeout(timer);
      settle(undefined);
    },
  };
}

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const log = options.log.child({ component: 'agent', agentId: options.agentId });
  // Before anything else: on a platform without one, the agent says so and does not start.
  const backend = backendFor(process.platform);
  const jail = RootJail.open(options.root);
  if (options.enterNamespaces !== undefined) backend.processes.checkCanEnter(options.enterNamespaces);
  // Modes arrive with the master's umask already applied by its kernel; ours must not apply again.
  process.umask(0);
  const bus: Bus = await connectBus({ url: options.natsUrl, name: `splitbrain-agent-${options.agentId}`, log });
  const info: HelloInfo = {
    protocol: PROTOCOL_VERSION,
    agentId: options.agentId,
    hostname: options.enterNamespaces === undefined ? hostname() : backend.processes.namespaceHostname(options.enterNamespaces),
    platform: platform(),
    backend: backend.name,
    release: release(),
    bootId: randomUUID(),
    hostBootId: await readHostBootId(),
    root: jail.root,
    readOnly: options.readOnly,
    capabilities: [...OP_NAMES.filter((op) => handlers[op] !== undefined), 'agent.batch', MASTER_HANDLES_CAPABILITY, MASTER_HANDLE_OPENS_CAPABILITY, RENAME_NOREPLACE_CAPABILITY, RENAME_EXCHANGE_CAPABILITY, LONG_PATHS_CAPABILITY],
    maxPayload: bus.maxPayload,
    pid: process.pid,
    euid: process.geteuid?.() ?? 0xffff_ffff,
    identity: process.geteuid?.() === 0 ? 'caller' : 'agent',
    startedAt: Date.now(),
    ...(options.version === undefined ? {} : { version: options.version }),
    lockLease: options.lockLeaseMs ?? DEFAULT_LOCK_LEASE_MS,
    policy: {
      devAllow: options.devAllow ?? DEFAULT_DEV_ALLOW, exec: options.execPolicy ?? 'all',
      deviceNodes: options.allowDeviceNodes ?? false,
    },
  };
  const actsForCallers = info.identity === 'caller';
  const searched = new SearchCache((host) => backend.files.accessAcl(host));
  dropUnsyncedWrites(log);
  const commits = new Commits(backend.files, options.commitIntervalMs ?? 2000, COMMIT_THRESHOLD_BYTES, log.child({ component: 'commits' }));
  const handles = new HandleTable(options.maxHandles ?? 10_000, (fd) => commits.release(fd));
  const locks = new LockLeases(info.lockLease ?? DEFAULT_LOCK_LEASE_MS, (fd) => { backend.files.flock(fd, 'un'); }, log.child({ component: 'locks' }));
  const changes = new AgentChangeFeed({
    backend: backend.changeWatch, program: options.watchHelper, watchMax: options.watchMax ?? defaultWatchMax(await backend.changeWatch.perDirectoryLimit()),
    jail, boot: info.bootId, maxPayload: bus.maxPayload, publish: (data) => bus.publish(changeSubject(options.agentId), data),
    log: log.child({ component: 'changes' }), mode: options.watchMode,
  });
  await changes.start();
  const procs = new ProcessTable({
    backend: backend.processes,
    publish: (subject, data) => bus.publish(subject, data),
    changeSeq: async () => {
      const { seq, state } = await changes.sync();
      return state === 'off' ? undefined : seq;
    },
    leaseMs: options.procLeaseMs ?? 5000, maxProcesses: 1024, log: log.child({ component: 'proc' }),
    connected: () => bus.connected,
    outputBudget: options.outputBudget ?? defaultOutputBudget(totalmem()), outputGraceMs: options.outputGraceMs ?? DEFAULT_OUTPUT_GRACE_MS,
  });
  bus.onReconnect(() => {
    procs.renewAll();
    log.info({ server: bus.server }, 'back on the bus');
  });
  let devJail: RootJail | undefined;
  try {
    devJail = RootJail.open(options.devRoot ?? '/dev');
  } catch (err) {
    log.warn({ err, devRoot: options.devRoot ?? '/dev' }, 'no devices served');
  }
  const devices = new DeviceHandles(backend.devices, 1024, (subject, data) => bus.publish(subject, data));
  watchHandles(() => ({ files: handles.size, devices: devices.size, processes: procs.size }));
  watchOutput(() => ({ kept: procs.budget.kept, budget: procs.budget.bytes, cuts: procs.budget.cuts }));
  // A link's requests are served as the bus's are (`serve` below); a read's pooled buffer is free
  // again once the link's socket has taken its reply.
  const links = await offerLinks(options.link ?? 'auto', options.linkOffer, bus, (op, data, admit) => serve(op, data, admit), log.child({ component: 'links' }),
    (reply) => readBuffers.giveBack(reply));
  const serving = { count: 0 };
  // A master reads ahead four chunks per file: room for four files at once.
  const readBuffers = new ReadBuffers(bus.maxPayload - REPLY_OVERHEAD, READ_BUFFERS, () => bus.flushed());
  const ctx: AgentContext = {
    backend, jail, handles, commits, locks, procs, devJail, devices, links, devAllow: globFilter(options.devAllow ?? DEFAULT_DEV_ALLOW),
    cursors: new ReaddirCursors(), readOnly: options.readOnly, enterNamespaces: options.enterNamespaces,
    execPolicy: options.execPolicy ?? 'all', actsForCallers, allowDeviceNodes: options.allowDeviceNodes ?? false,
    searched, access: (caller, root = jail) => new CallerAccess(caller, root, actsForCallers, searched),
    changes, maxPayload: bus.maxPayload, readBuffers, log,
    serving,
    hello: () => ({ ...info, changes: changes.feedMode, server: bus.server, reconnects: bus.reconnects, busy: serving.count }),
  };
  const dispatch = createDispatcher(handlers, ctx, info.bootId);
  // Exact file times need koffi and libc (backends/linux/file-times.ts), loaded at the first
  // time change rather than at start: an idle agent does not map them (docs/performance.md, "Agent memory").
  let timesChecked = false;
  const checkExactTimes = () => {
    if (timesChecked) return;
    timesChecked = true;
    const problem = backend.files.exactTimesProblem();
    if (problem !== undefined) log.warn(problem);
  };
  const serve = (op: string, data: Uint8Array, admit?: (op: OpName, args: unknown) => boolean): Promise<Uint8Array> => {
    if (TIME_OPS.has(op) || op === 'agent.batch') checkExactTimes();
    return dispatch(op, data, admit);
  };
  let served: { stop(): void };
  let discover: { stop(): void };
  try {
    await refuseTakenId(bus, info, log);
    // Refused when these credentials are not this agent id's (docs/security.md): then nothing
    // may serve under that id, and the agent fails to start with the server's reason.
    served = await bus.serve(agentWildcard(options.agentId), async (subject, data) => serve(opFromSubject(options.agentId, subject) ?? '', data),
      (reply) => readBuffers.sent(reply));
    discover = await bus.serve(DISCOVER_SUBJECT, async (_subject, data) => dispatch('agent.hello', data));
  } catch (err) {
    links?.close();
    procs.close();
    changes.stop();
    await commits.close();
    await bus.close();
    throw err;
  }
  log.info({ root: jail.root, readOnly: options.readOnly, bootId: info.bootId }, 'agent serving');
  // Two agents that started together both found nobody: now each sees the other, and the later
  // one yields. In the background: this one serves meanwhile, as it would have anyway. Asked
  // again and again: across a cluster and its leaf nodes a new subscription reaches the other
  // servers some time later, so one look right after subscribing can see nobody.
  const twinWatch = watchForTwin(bus, info, log);
  return {
    info,
    displaced: twinWatch.displaced,
    async stop() {
      twinWatch.stop();
      served.stop();
      discover.stop();
      procs.close();
      locks.stop();
      changes.stop();
      devices.closeAll();
      links?.close();
      await handles.closeAll();
      await commits.close();
      await bus.close();
    },
  };
}
