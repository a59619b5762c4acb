/**
 * Every operation of the wire protocol, declared once: its name (the last two subject tokens),
 * its request and its reply. Both ends validate what they receive against these schemas, so a
 * malformed message is an error reply, never a crash or a wrong answer.
 *
 * Paths are slave paths relative to the agent's export root, always starting with '/'.
 * File data travels as raw bytes (msgpack bin), never as strings.
 */
import * as v from 'valibot';
import { ATTR_FIELDS, ATTR_FIELDS_V1, wireAttrTimesValid } from './attr.js';
import { NSEC_PER_SEC } from './file-times.js';
import { LONG_PATH_MAX, NAME_MAX, PATH_MAX as MAX_PATH, nameFromBytes } from './name-bytes.js';
import { FEED_MODES, FEED_STATES } from './changes.js';
import { linkOffer } from './link.js';
import { bytes, finite, int, intIn, map, u16, u32, u53 } from './schema.js';


const noNul = (what: string) => v.check((s: string) => !s.includes('\0'), `${what} contains NUL`);
/**
 * A slave name, path or link target: a str, or (protocol 2) bin holding its exact bytes when they
 * are not UTF-8, read back as the surrogateescape string (name-bytes.ts, wire-forms.ts). Bytes
 * longer than any name are left as they are, for the string check to refuse.
 */
const slaveName = <T extends v.GenericSchema<unknown, string>>(schema: T, longest = MAX_PATH) =>
  v.pipe(v.unknown(), v.transform((x) => (x instanceof Uint8Array && x.length <= longest * 4 ? nameFromBytes(x) : x)), schema);
const slavePath = slaveName(v.pipe(v.string(), v.minLength(1), v.maxLength(LONG_PATH_MAX), v.startsWith('/'), noNul('path')), LONG_PATH_MAX);
const fh = u32;
/**
 * Protocol 1 agents send ATTR_FIELDS_V1 numbers, newer ones ATTR_FIELDS; more, from a newer
 * agent, are ignored (attrFromWire reads the fields it knows).
 */
const wireAttr = v.pipe(v.array(finite), v.minLength(ATTR_FIELDS_V1), v.maxLength(ATTR_FIELDS.length + 16),
  v.check(wireAttrTimesValid, 'nanoseconds out of range'));
const attrReply = v.object({ attr: wireAttr });
/** flock(2)'s operations: LOCK_SH, LOCK_EX, LOCK_UN. */
const flockLock = v.picklist(['sh', 'ex', 'un']);
/** A new name's reply: bare, it has no extended attribute at all (older agents: not said). */
const madeReplySchema = v.object({ attr: wireAttr, bare: v.optional(v.literal(true)) });
/** No arguments, or no result: any map (a newer peer's keys are dropped). */
const empty = v.pipe(map, v.object({}));

/** fs.fallocate's mode bits: Linux's numbers, the only ones the kernel hands a FUSE filesystem. */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;
const FALLOC_MODES = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
/** fs.lseek's whence: Linux's numbers. */
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
/**
 * utimensat's kinds of time: seconds and nanoseconds since the epoch (exact; protocol 2),
 * milliseconds since the epoch (protocol 1 masters), now, or leave unchanged.
 */
const timeSpec = v.union([
  finite,
  v.literal('now'),
  v.literal('omit'),
  v.object({ sec: intIn(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER), nsec: intIn(0, NSEC_PER_SEC - 1) }),
]);
// No NUL in a name or link target either: no syscall can take one (Node throws, not an errno).
const xattrName = v.pipe(v.string(), v.minLength(1), v.maxLength(NAME_MAX), noNul('attribute name'));
/** A uid or gid as chown(2) takes it: a uid_t, or -1 to keep it. */
const ownerId = intIn(-1, 0xffffffff);

/**
 * A terminal's settings as Linux's termios2 holds them (<asm-generic/termbits.h>): flags, line
 * discipline, control characters and the two speeds in bits per second.
 */
const wireTermios = v.object({
  iflag: u32, oflag: u32, cflag: u32, lflag: u32, line: intIn(0, 255),
  cc: v.pipe(bytes, v.check((cc) => cc.length <= 64, 'too many control characters')), ispeed: u32, ospeed: u32,
});
export type WireTermios = v.InferOutput<typeof wireTermios>;
/**
 * Asked by masters that relay terminals through pseudo-terminals of their own: the slave's
 * terminals (serial ports, USB adapters, ptys) are then presented as character devices of size 0
 * instead of regular files. Agents before it ignore it.
 */
const terminals = v.optional(v.boolean());
const procId = u32;
/** A uid or gid a process takes: a uid_t, but never (uid_t)-1, which set*id(2) read as "unchanged". */
const processId = intIn(0, 0xfffffffe);
/**
 * Supplementary groups a spawn may ask for: far more than anyone has (NFS's AUTH_SYS carries 16),
 * few enough that their list fits in one argument of the slave's setpriv (128 KiB).
 */
export const MAX_SPAWN_GROUPS = 4096;
/** The signals a master may send to a process it spawned (as ssh forwards them). */
export const FORWARDED_SIGNALS = [
  'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGKILL', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH',
] as const;
const signalName = v.picklist(FORWARDED_SIGNALS);
/** A NATS subject to publish on: tokens of safe characters, no wildcards. */
const publishSubject = v.pipe(v.string(), v.maxLength(256), v.regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'not a plain NATS subject'));
const MAX_ARGS = 4096;
const MAX_ARG = 128 * 1024;
const envName = v.pipe(v.string(), v.minLength(1), v.maxLength(1024), v.regex(/^[^=\0]+$/, 'not an environment variable name'));

function op<Req extends v.GenericSchema, Res extends v.GenericSchema>(req: Req, res: Res) {
  return { req, res };
}

/**
 * A string an agent reports that people will read (`status`, `hello`): bounded, and without
 * control characters, so a hostile agent cannot write terminal escapes onto an operator's screen.
 */
const shown = (max: number) => v.pipe(v.string(), v.maxLength(max), v.regex(/^[^\p{Cc}]*$/u, 'contains control characters'));

export const helloInfo = v.object({
  protocol: int,
  agentId: shown(128),
  hostname: shown(255),
  platform: shown(64),
  /**
   * The implementation of the agent's services for its platform (agent/backends/: 'linux').
   * Absent from agents older than it.
   */
  backend: v.optional(shown(64)),
  release: shown(256),
  /** Changes on every agent start: a new value means every handle of ours is gone. */
  bootId: shown(64),
  /** The slave kernel's boot id, where it has one: a new value means the slave rebooted. */
  hostBootId: shown(64),
  root: shown(MAX_PATH),
  readOnly: v.boolean(),
  /** Ops this agent serves. */
  capabilities: v.pipe(v.array(shown(64)), v.maxLength(256)),
  /** Largest message the bus accepts, as the agent's server reported it. */
  maxPayload: u53,
  pid: u32,
  /** The agent's effective uid: 0 means chmod, chown and utimens of a file cannot be refused. */
  euid: u32,
  /**
   * Whose rights requests get, and whose files they create: 'caller' (a root agent acts as the
   * master process that asks, protocol/caller.ts), 'agent' (a non-root agent acts as itself, as
   * sshfs's server does). Absent from agents older than it, which act as themselves.
   */
  identity: v.optional(v.picklist(['caller', 'agent'])),
  startedAt: finite,
  /** The agent's software version (package.json); absent from agents older than it. */
  version: v.optional(shown(64)),
  /**
   * How long a flock lock (fs.flock, dev.flock) a master does not ask for again lasts, in
   * milliseconds (agent/lock-leases.ts): masters renew theirs every third of it. Absent from
   * agents before leases, which keep a lock until its handle's release.
   */
  lockLease: v.optional(u53),
  /** The agent's own policy: which devices and commands masters may use (read-only is above). */
  policy: v.object({
    devAllow: v.pipe(v.array(shown(MAX_PATH)), v.maxLength(1024)),
    /** 'all', 'none', or the --exec-allow globs. */
    exec: v.union([v.literal('all'), v.literal('none'), v.pipe(v.array(shown(MAX_PATH)), v.maxLength(1024))]),
    /** Whether masters may create block and character device nodes (--allow-device-nodes). */
    deviceNodes: v.optional(v.boolean()),
  }),
  /** How the agent learns of changes for its feed (changes.ts); absent from agents older than it. */
  changes: v.optional(v.picklist(FEED_MODES)),
  /**
   * The NATS server the agent is connected to now (its name as the server reports it, and the
   * address it was reached at), and how many times it has connected again since it started: a
   * reply to a request sent before the agent moved servers may have been lost with the old
   * connection (transport/agent-client.ts asks again). Absent from agents older than them.
   */
  server: v.optional(v.object({ name: shown(256), url: shown(512) })),
  reconnects: v.optional(u53),
  /**
   * Requests the agent is serving as it answers (hellos aside). 0 while a master still waits
   * for replies sent long ago: they were lost on the way (a leaf node's link to the cluster
   * went away), and the master asks again at once instead of at its deadline.
   */
  busy: v.optional(u53),
});

/**
 * What an agent has done since it started, as totals (a watcher such as `splitbrain top` turns
 * two of them into rates). `errors` counts answers with an errno; `seconds` is serving time.
 */
export const agentStats = v.object({
  ops: v.pipe(v.array(v.object({ op: shown(64), count: u53, errors: u53, seconds: v.pipe(v.number(), v.finite(), v.minValue(0)) })), v.maxLength(256)),
  bytesRead: u53,
  bytesWritten: u53,
  inFlight: u53,
  processesSpawned: u53,
  handles: v.object({ files: u53, devices: u53, processes: u53 }),
  /** The change feed: its mode, last sequence number, directories watched, losses since start. */
  changes: v.optional(v.object({ mode: v.picklist(FEED_MODES), seq: u53, watches: u53, lost: u53 })),
  /**
   * Process output the agent keeps until its masters have it (bytes, all processes), its
   * --output-budget, and the processes it cut off since start for falling behind (`cut` events).
   * Absent from agents older than it.
   */
  output: v.optional(v.object({ kept: u53, budget: u53, cuts: u53 })),
  /**
   * Links made since start (device and session), and the frames they carried both ways: the
   * messages that did not cross the NATS server. Absent from agents older than it.
   */
  links: v.optional(v.object({ made: u53, frames: u53 })),
});

/** The most requests one `agent.batch` carries. */
export const MAX_BATCH_REQUESTS = 256;

/** The most directories a readdir may name to list after its own (fs.readdir's `then`). */
export const MAX_LISTED_THEN = 64;

export const readdirEntry = v.strictTuple([slaveName(v.pipe(v.string(), v.minLength(1), v.maxLength(NAME_MAX))), v.nullable(wireAttr)]);

export const ops = {
  'agent.hello': op(empty, helloInfo),
  'agent.stats': op(empty, agentStats),
  /**
   * Several requests of one master in one message (transport/request-batch.ts): the agent starts
   * them in order, as if they had come one by one on one connection, and answers each, in the
   * same order. Each is a whole request with its own id (the duplicate cache knows it by that).
   */
  'agent.batch': op(
    v.object({ requests: v.pipe(v.array(v.strictTuple([shown(64), bytes])), v.minLength(1), v.maxLength(MAX_BATCH_REQUESTS)) }),
    v.object({ replies: v.pipe(v.array(bytes), v.maxLength(MAX_BATCH_REQUESTS)) }),
  ),

  /**
   * A session link for the asking master (link.ts): one direct connection that carries all its
   * requests and their replies, as the bus would, in order. `null` when the agent offers none
   * (--link off, or it cannot listen): the master stays on the bus.
   */
  'agent.link': op(empty, v.object({ link: v.nullable(linkOffer) })),

  'fs.getattr': op(v.object({ path: slavePath }), attrReply),
  'fs.fgetattr': op(v.object({ fh }), attrReply),
  /** mode: F_OK (0), or R_OK | W_OK | X_OK (4, 2, 1); access(2) knows no other bits. */
  'fs.access': op(v.object({ path: slavePath, mode: intIn(0, 7) }), empty),
  'fs.statfs': op(v.object({ path: slavePath }), v.object({
    bsize: u53, frsize: u53, blocks: u53, bfree: u53, bavail: u53, files: u53, ffree: u53,
    namemax: u53,
  })),
  /** Either starts listing `path` or continues with the `cursor` a previous page returned. */
  /**
   * The change feed's position: `seq` covers every change the slave made before this request
   * arrived (the agent drains its watcher first), so a master that has applied the feed up to
   * `seq` has seen them all (changes.ts).
   */
  'fs.changes': op(empty, v.object({ seq: u53, state: v.picklist(FEED_STATES) })),
  /** bare: indices into `entries` of those with no extended attribute at all (older agents: none said). */
  /**
   * below: also list the directories under `path`, depth first in listing order, then each of
   * `then` and those under it, up to about this many entries in all; each comes whole (path,
   * entries, indexes of the bare ones) in the reply's `below`, or not at all (agents before
   * these fields ignore them and send none).
   */
  'fs.readdir': op(
    v.union([
      v.object({ path: slavePath, below: v.optional(u32), then: v.optional(v.pipe(v.array(slavePath), v.maxLength(MAX_LISTED_THEN))) }),
      v.object({ cursor: u32 }),
    ]),
    v.object({
      entries: v.array(readdirEntry), cursor: v.nullable(u32), bare: v.optional(v.array(u32)),
      below: v.optional(v.array(v.strictTuple([slavePath, v.array(readdirEntry), v.array(u32)]))),
    }),
  ),

  /**
   * whole: a regular file opened for reading that holds at most this many bytes comes back whole
   * in `data`, so its first read needs no round trip of its own (agents before this field ignore
   * it and send no data). handle: as for fs.create (agents whose hello lists
   * MASTER_HANDLE_OPENS_CAPABILITY).
   */
  'fs.open': op(
    v.object({ path: slavePath, flags: u32, whole: v.optional(u32), handle: v.optional(v.pipe(u32, v.minValue(0x8000_0000))) }),
    v.object({ fh, attr: wireAttr, data: v.optional(bytes) }),
  ),
  /**
   * handle: the number (bit 31 set, handle-ids.ts) this master names the file by, in this request's
   * reply and in its later requests, which it may send before this reply arrives (agents whose
   * hello lists MASTER_HANDLES_CAPABILITY).
   */
  'fs.create': op(
    v.object({ path: slavePath, flags: u32, mode: u32, handle: v.optional(v.pipe(u32, v.minValue(0x8000_0000))) }),
    v.object({ fh, attr: wireAttr, bare: v.optional(v.literal(true)) }),
  ),
  'fs.read': op(v.object({ fh, offset: u53, length: u32 }), v.object({ data: bytes })),
  /** seq: this write's place in the agent's commit order; durable: the highest seq on disk. */
  'fs.write': op(v.object({ fh, offset: u53, data: bytes }), v.object({ written: u53, seq: u53, durable: u53 })),
  /** The highest write seq on the slave's disk; force: sync everything written so far first. */
  'fs.commit': op(v.object({ force: v.boolean() }), v.object({ durable: u53 })),
  'fs.flush': op(v.object({ fh }), empty),
  'fs.fsync': op(v.object({ fh, datasync: v.boolean() }), empty),
  'fs.release': op(v.object({ fh }), empty),
  /**
   * flock(2) of the open file on the slave, never waiting there: a lock another holder has (a
   * program of the slave's, another master, another open of this master's) answers EWOULDBLOCK
   * at once, and a master whose caller waits asks again. The lock goes with the handle's release.
   */
  'fs.flock': op(v.object({ fh, lock: flockLock }), empty),
  'fs.ftruncate': op(v.object({ fh, size: u53 }), attrReply),
  /**
   * fallocate(2) of an open file: `mode` 0 or Linux's FALLOC_FL_KEEP_SIZE (1), PUNCH_HOLE (2,
   * with KEEP_SIZE) and ZERO_RANGE (16) bits, the ones the kernel hands a FUSE filesystem.
   */
  'fs.fallocate': op(v.object({
    fh, mode: v.pipe(u32, v.check((m) => (m & ~FALLOC_MODES) === 0, 'mode: only KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE bits')),
    offset: u53, length: v.pipe(u53, v.minValue(1)),
  }), attrReply),
  /**
   * copy_file_range(2) on the slave, from open file `source` at `sourceOffset` to open file `fh`
   * at `offset`: the bytes never cross the link. `copied` may be fewer than `length` (0: the
   * source's end); it is on the slave's disk when answered. `attr`: `fh`'s file after.
   */
  'fs.copyrange': op(v.object({ source: fh, sourceOffset: u53, fh, offset: u53, length: u53 }), v.object({ copied: u53, attr: wireAttr })),
  /** lseek(2) of an open file with SEEK_DATA (3) or SEEK_HOLE (4): the offset found (ENXIO: none). */
  'fs.lseek': op(v.object({ fh, offset: u53, whence: v.picklist([SEEK_DATA, SEEK_HOLE]) }), v.object({ offset: u53 })),
  /** chmod, chown and utimens of an open file, by its handle (fchmod, fchown, futimens). */
  'fs.fchmod': op(v.object({ fh, mode: u32 }), attrReply),
  'fs.fchown': op(v.object({ fh, uid: ownerId, gid: ownerId }), attrReply),
  'fs.futimens': op(v.object({ fh, atime: timeSpec, mtime: timeSpec }), attrReply),

  'fs.truncate': op(v.object({ path: slavePath, size: u53 }), attrReply),
  // attr: the file's attributes after, when it keeps another name (optional: older agents send none).
  'fs.unlink': op(v.object({ path: slavePath }), v.object({ attr: v.optional(wireAttr) })),
  // same: both names were links to one file, which POSIX leaves as it was (older agents: not said).
  // noReplace: renameat2's RENAME_NOREPLACE, EEXIST if `to` exists (agents whose hello lists RENAME_NOREPLACE_CAPABILITY).
  // exchange: renameat2's RENAME_EXCHANGE, both names must exist (agents whose hello lists RENAME_EXCHANGE_CAPABILITY).
  'fs.rename': op(v.object({ from: slavePath, to: slavePath, noReplace: v.optional(v.literal(true)), exchange: v.optional(v.literal(true)) }), v.pipe(map, v.object({ same: v.optional(v.literal(true)) }))),
  'fs.link': op(v.object({ existing: slavePath, path: slavePath }), madeReplySchema),
  /** `target` is the link's content, stored as given (it is not a path we resolve). */
  'fs.symlink': op(v.object({ target: slaveName(v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_PATH), noNul('target'))), path: slavePath }), madeReplySchema),
  'fs.readlink': op(v.object({ path: slavePath }), v.object({ target: slaveName(v.string()) })),
  'fs.mkdir': op(v.object({ path: slavePath, mode: u32 }), madeReplySchema),
  'fs.rmdir': op(v.object({ path: slavePath }), empty),
  'fs.chmod': op(v.object({ path: slavePath, mode: u32 }), attrReply),
  /** -1 leaves the id unchanged, as chown(2) does. */
  'fs.chown': op(
    v.object({ path: slavePath, uid: ownerId, gid: ownerId }),
    attrReply,
  ),
  'fs.utimens': op(v.object({ path: slavePath, atime: timeSpec, mtime: timeSpec }), attrReply),
  'fs.mknod': op(v.object({ path: slavePath, mode: u32, rdev: u32 }), attrReply),

  'fs.getxattr': op(v.object({ path: slavePath, name: xattrName }), v.object({ value: bytes })),
  'fs.setxattr': op(
    v.object({ path: slavePath, name: xattrName, value: bytes, flags: u32 }),
    empty,
  ),
  'fs.listxattr': op(v.object({ path: slavePath }), v.object({ names: v.array(v.string()) })),
  'fs.removexattr': op(v.object({ path: slavePath, name: xattrName }), empty),

  /**
   * Starts a process on the slave. Its output comes as `ProcEvent`s published on `output`
   * (agent --stdout/stderr/exit--> master), at most `window` bytes ahead of the credit the
   * master returns with `proc.credit`. `cwd` is a slave path (inside the export root).
   * `uid`, `gid` and `groups` (supplementary, exactly these; none when only uid or gid is given)
   * need a root agent; a non-root agent asked for its own uid and gid runs as itself, asked for
   * anyone else answers EPERM. An agent older than `groups` ignores it (unknown keys are dropped)
   * and runs the process with uid and gid but no supplementary groups.
   */
  'proc.spawn': op(v.object({
    argv: v.pipe(v.array(v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_ARG), v.check((a) => !a.includes('\0'), 'argument contains NUL'))), v.minLength(1), v.maxLength(MAX_ARGS)),
    env: v.pipe(map, v.record(envName, v.pipe(v.string(), v.maxLength(MAX_ARG), v.check((value) => !value.includes('\0'), 'value contains NUL')))),
    cwd: slavePath,
    uid: v.optional(processId),
    gid: v.optional(processId),
    groups: v.optional(v.pipe(v.array(processId), v.maxLength(MAX_SPAWN_GROUPS))),
    /** A pseudo-terminal of this size instead of pipes (stdout and stderr then merge). */
    pty: v.nullable(v.object({ rows: u16, cols: u16 })),
    output: publishSubject,
    window: v.pipe(u32, v.minValue(1)),
    /**
     * The master reads `cut` events (below). Without it (older masters) the agent still cuts a
     * process whose master falls behind, and such a master sees only how the process ended.
     * Agents older than it ignore it (unknown keys are dropped) and never cut.
     */
    cuts: v.optional(v.boolean()),
    /**
     * The identity of the master's session link (the `agent.link` offer it took): while that link
     * is up, the output goes down it (protocol/link.ts, ROUTED frames) instead of the bus, one TCP
     * hop instead of two through the NATS server; on the bus when it is not (or never was) up.
     * Agents older than it ignore it (unknown keys are dropped) and publish on the bus.
     */
    linkOutput: v.optional(v.pipe(v.string(), v.regex(/^[0-9a-f]{8,64}$/, 'not a link identity'))),
  }), v.object({ procId, pid: u32 })),
  /** master --stdin--> process; answered once written into the process's stdin. */
  'proc.stdin': op(v.object({ procId, data: bytes, eof: v.boolean() }), empty),
  'proc.signal': op(v.object({ procId, signal: signalName }), empty),
  'proc.resize': op(v.object({ procId, rows: u16, cols: u16 }), empty),
  /**
   * The master is gone or stopped listening (its reader left, its shim died): as when an ssh
   * session drops, the process's output pipes are closed (its writers get SIGPIPE), its process
   * group gets SIGHUP, and SIGKILL a few seconds later if it is still there.
   */
  'proc.hangup': op(v.object({ procId }), empty),
  /**
   * The master has written out `bytes` more of the output: the agent may send that much more.
   * `received`: the seq of the next event the master expects (it has every one before it): the
   * agent keeps every event it sent until it is received (credited output was received too),
   * to send again on `proc.resend`, and forgets an ended process once its exit is received.
   * Agents older than `received` ignore it.
   */
  'proc.credit': op(v.object({ procId, bytes: u32, received: v.optional(u53) }), empty),
  /**
   * The master missed events from `from` on (its connection to the bus moved to another server,
   * or the agent's did, and NATS dropped what was published meanwhile): the agent publishes
   * again, in order, every event it still keeps from that seq on. ESRCH: it keeps none.
   * `bus`: the session link the output went down (`proc.spawn`'s `linkOutput`) is gone at the
   * master's end: publish on the output subject from now on (the agent may not yet know the link
   * is dead: a link whose packets are dropped looks alive for minutes). Agents older than it ignore it.
   */
  'proc.resend': op(v.object({ procId, from: u53, bus: v.optional(v.boolean()) }), empty),
  /**
   * The master still wants these processes. A process not named for the agent's lease time is
   * hung up on and killed: nothing outlives a master that went away. Replies with the ids the
   * agent does not know (already reaped), and `next`: for each process it knows, the seq its
   * next event will have (a master behind it lost events and asks for them with proc.resend).
   * An ended process is known until its exit is received, or its lease runs out.
   */
  'proc.keepalive': op(v.object({ procIds: v.pipe(v.array(procId), v.maxLength(65536)) }), v.object({
    gone: v.array(procId),
    next: v.optional(v.pipe(v.array(v.strictTuple([procId, u53])), v.maxLength(65536))),
  })),

  /**
   * The slave's devices, under the agent's --dev-root: paths are relative to it. Character and
   * block devices are presented as regular files of size 0 (never as device nodes: the master's
   * kernel would open its own device with those numbers); reads and writes reach the device.
   */
  'dev.getattr': op(v.object({ path: slavePath, terminals }), attrReply),
  'dev.readdir': op(v.object({ path: slavePath, terminals }), v.object({ entries: v.array(readdirEntry) })),
  /**
   * `inTree`: the target as a path in the device tree (absolute ones from the tree's root), for the
   * master to show (mount/symlink-view.ts). Without it (masters before it; agents before it ignore
   * it) the target comes shown relative to the link, which any master may show as it is.
   */
  'dev.readlink': op(v.object({ path: slavePath, inTree: v.optional(v.boolean()) }), v.object({ target: v.string() })),
  /** EACCES outside --dev-allow. `flags` as open(2)'s; O_NONBLOCK makes reads answer EAGAIN. */
  'dev.open': op(v.object({ path: slavePath, flags: u32 }), v.object({ fh })),
  /**
   * What the device has, up to `length` bytes, as soon as it has any. A blocking read with
   * nothing after `waitMs` answers empty data with `eof` false: ask again (the wait stays bounded).
   */
  'dev.read': op(v.object({ fh, length: u32, waitMs: u32 }), v.object({ data: bytes, eof: v.boolean() })),
  'dev.write': op(v.object({ fh, data: bytes }), v.object({ written: u53 })),
  /** Closes the device; a read still waiting on it answers EINTR. */
  'dev.release': op(v.object({ fh }), empty),
  /** flock(2) of the open device, as fs.flock. */
  'dev.flock': op(v.object({ fh, lock: flockLock }), empty),
  /**
   * Opens a device as a stream pushed to the master: the agent reads it as data arrives and
   * publishes `DevEvent`s on `output` (agent --data--> master), at most `window` bytes ahead of
   * the credit the master returns with `dev.credit`; the end of the stream (the device gone, end
   * of file) is an event too. Writes are `dev.write`s, applied in the order they arrive, so a
   * master need not wait for one before sending the next. A terminal (`terminal`: asked by a
   * master that relays it through a pseudo-terminal) is put in raw mode on the slave, its line
   * settings being the master's to apply, and the reply carries the settings it had. A master
   * that asks for a `link` may get one offered (link.ts): a direct connection that carries
   * this stream's requests and events instead of the bus, null when the agent offers none.
   */
  'dev.stream': op(v.object({ path: slavePath, flags: u32, output: publishSubject, window: v.pipe(u32, v.minValue(1)), terminal: v.boolean(), link: v.optional(v.boolean()) }),
    v.object({ fh, termios: v.nullable(wireTermios), link: v.optional(v.nullable(linkOffer)) })),
  /**
   * Data for a device stream's device, published without waiting for an answer (a reply, if asked
   * for, says nothing): the agent writes inputs in `seq` order, each once (one already written, or
   * one after a gap, is dropped: the master sends again what the agent's acknowledgements do not
   * cover), and acknowledges them in the stream's events (`acked`: the next seq it expects;
   * `errno`: the first write the device refused). `credit` and `received` ride along as in
   * `dev.credit`, so a terminal's typing needs no message of its own for them.
   */
  'dev.input': op(v.object({ fh, seq: u53, data: bytes, credit: u32, received: u53 }), empty),
  /**
   * As `proc.credit`, for a device stream (a master may publish it without waiting). The reply's
   * `sent`: the events the agent has sent so far (its next seq); a master that has fewer after a
   * silence lost the last ones on the way, and asks for them again.
   */
  'dev.credit': op(v.object({ fh, bytes: u32, received: u53 }), v.object({ sent: v.optional(u53) })),
  /**
   * As `proc.resend`, for a device stream. `unlink`: the master has given up the stream's device
   * link (it broke, or went silent): the agent drops its end before sending again, so the events
   * come on the bus, not into a connection nobody reads.
   */
  'dev.resend': op(v.object({ fh, from: u53, unlink: v.optional(v.boolean()) }), empty),
  /**
   * A terminal's settings without opening it for a stream, for a master to give its relay before
   * a program opens it: a pseudo-terminal's are read (opening one changes nothing); a serial
   * port's are those the last relay left (opening one raises its modem lines, which resets some
   * boards), null when the agent has not had it open.
   */
  'dev.tcgetattr': op(v.object({ path: slavePath }), v.object({ termios: v.nullable(wireTermios) })),
  /**
   * A change a test made to a relayed terminal's line on the master: new speeds (null: as they
   * are) and the `cflagMask` bits of c_cflag (character size, parity, stop bits, flow control,
   * modem control: protocol/termios.ts) set to `cflagBits`. The slave's device takes them; the
   * rest of the settings stay raw there, the master's pseudo-terminal applying them. Applied in
   * order with the stream's writes.
   */
  'dev.termios': op(v.object({ fh, ispeed: v.nullable(u32), ospeed: v.nullable(u32), cflagBits: u32, cflagMask: u32 }), empty),
  /**
   * `dev.termios` for a terminal no relay has open: a test that set the master's terminal while
   * nothing held it (`stty -F /dev/ttyUSB0 9600`: open, set, close) has the device's line set as
   * that command on the slave would, by opening the device without reading it, setting the line
   * and closing it.
   */
  'dev.setline': op(v.object({ path: slavePath, ispeed: v.nullable(u32), ospeed: v.nullable(u32), cflagBits: u32, cflagMask: u32 }), empty),
  /** tcflush(3) on the slave's device: what it received and has not delivered, what it has not sent, or both. */
  'dev.flush': op(v.object({ fh, queue: v.picklist(['input', 'output', 'both']) }), empty),
  /** tcsendbreak(3): a break of `ms` milliseconds (0: the device's default), after the writes before it. */
  'dev.break': op(v.object({ fh, ms: intIn(0, 10_000) }), empty),
} as const;

/**
 * agent --> master, on a `dev.stream`'s output subject: the device's data in order, then its
 * end: `errno` null for end of file, else why it ended (EIO: the device went away).
 */
export const devEvent = v.union([
  v.object({ fh, seq: u53, data: bytes, acked: v.optional(u53) }),
  v.object({ fh, seq: u53, end: v.object({ errno: v.nullable(v.pipe(v.string(), v.maxLength(32))) }) }),
  /** Not numbered (the latest one says all): what `dev.input` the device has taken. */
  v.object({ fh, ack: v.object({ acked: u53, errno: v.nullable(v.pipe(v.string(), v.maxLength(32))) }) }),
]);
export type DevEvent = v.InferOutput<typeof devEvent>;

/** agent --> master, on a `proc.spawn`'s output subject: output in order, then the exit. */
export const procEvent = v.union([
  v.object({ procId, seq: u53, stream: v.picklist(['stdout', 'stderr']), data: bytes }),
  v.object({
    procId, seq: u53,
    /**
     * changeSeq: the change feed's sequence number once the process had exited (changes.ts):
     * everything it changed on the slave is at or below it. Absent from agents older than it,
     * and when the agent has no feed.
     */
    exit: v.object({ code: v.nullable(int), signal: v.nullable(v.pipe(v.string(), v.maxLength(32))), changeSeq: v.optional(u53) }),
  }),
  /**
   * Only to masters that asked for it (proc.spawn's `cuts`): the process's output ends here. Its
   * master fell behind the agent's output budget, so the agent dropped what it kept of it (an
   * event before this seq that did not arrive never will), closed its output and hung up on it;
   * its exit follows. `errno` says why (ENOBUFS), `message` for the user.
   */
  v.object({ procId, seq: u53, cut: v.object({ errno: v.pipe(v.string(), v.maxLength(32)), message: shown(1024) }) }),
]);
export type ProcEvent = v.InferOutput<typeof procEvent>;

export type OpName = keyof typeof ops;
export type OpRequest<K extends OpName> = v.InferOutput<(typeof ops)[K]['req']>;
export type OpReply<K extends OpName> = v.InferOutput<(typeof ops)[K]['res']>;
export type HelloInfo = v.InferOutput<typeof helloInfo>;
export type AgentStats = v.InferOutput<typeof agentStats>;
export type ReaddirEntry = v.InferOutput<typeof readdirEntry>;
export type TimeSpec = v.InferOutput<typeof timeSpec>;
export type FlockLock = v.InferOutput<typeof flockLock>;

export const OP_NAMES = Object.keys(ops) as OpName[];

export function isOpName(name: string): name is OpName {
  return Object.hasOwn(ops, name);
}

/**
 * Ops a retried request must not run twice: their effect or their answer changes if they do
 * (a second rename finds no source, a second spawn starts a second process, a second stdin or
 * device write repeats bytes, a second device read loses what the first took). The agent
 * answers a retry of one of these from its duplicate request cache (agent/replay-cache.ts);
 * every other op gives the same answer when run again, and is simply run again.
 */
export const NOT_IDEMPOTENT: ReadonlySet<OpName> = new Set<OpName>([
  'fs.open', 'fs.create', 'fs.unlink', 'fs.rename', 'fs.link', 'fs.symlink', 'fs.mkdir', 'fs.rmdir',
  'fs.mknod', 'fs.setxattr', 'fs.removexattr', 'fs.release',
  'proc.spawn', 'proc.stdin', 'proc.signal', 'proc.hangup', 'proc.credit',
  'dev.open', 'dev.read', 'dev.write', 'dev.release', 'dev.stream', 'dev.credit', 'dev.break',
]);
