/**
 * Turns one request message into one reply message: decode and validate, refuse what policy
 * forbids, run the op's handler, and encode its result or its errno. Never throws: whatever
 * arrives, the requester gets an answer and the agent keeps serving.
 */
import {
  NOT_IDEMPOTENT, decodeRequest, originOfRequest, encodeErrorReply, encodeReply, errnoOf, isOpName, requestIdOf,
  type DecodedRequest, type OpName, type OpReply, type OpRequest,
} from '../protocol/index.js';
import { agentMetrics } from './agent-metrics.js';
import { ReplayCache } from './replay-cache.js';
import type { AgentContext, HandlerTable, OpHandler } from './context.js';
import { writesWith } from './fs/file-ops.js';

/** Ops that change the slave's filesystem: refused with EROFS on a read-only agent. */
const MUTATING: ReadonlySet<OpName> = new Set<OpName>([
  'fs.create', 'fs.write', 'fs.ftruncate', 'fs.fallocate', 'fs.copyrange', 'fs.truncate', 'fs.unlink', 'fs.rename', 'fs.link',
  'fs.symlink', 'fs.mkdir', 'fs.rmdir', 'fs.chmod', 'fs.chown', 'fs.utimens', 'fs.mknod',
  'fs.setxattr', 'fs.removexattr', 'fs.fchmod', 'fs.fchown', 'fs.futimens',
]);

/** Ops after which a directory's search permission may differ: checks forget what they knew. */
const CHANGING_SEARCH: ReadonlySet<OpName> = new Set<OpName>([
  'fs.chmod', 'fs.chown', 'fs.fchmod', 'fs.fchown', 'fs.rename', 'fs.rmdir', 'fs.setxattr', 'fs.removexattr',
]);

/** The slave paths a request changes, if it changes any: its path arguments, or its handle's file. */
function changedPaths<K extends OpName>(op: K, args: OpRequest<K>, ctx: AgentContext): string[] | undefined {
  const fields = args as { path?: unknown; from?: unknown; to?: unknown; existing?: unknown; fh?: unknown; flags?: unknown };
  if (op === 'fs.open' ? !writesWith(fields.flags as number) : !MUTATING.has(op) && op !== 'fs.release') return undefined;
  const paths: string[] = [];
  for (const value of [fields.path, fields.from, fields.to, fields.existing]) if (typeof value === 'string') paths.push(value);
  if (typeof fields.fh === 'number') {
    const file = ctx.handles.find(fields.fh);
    if (file !== undefined) paths.push(file.slavePath);
  }
  return paths;
}

/**
 * The request with a file handle its master named (fs.create's `handle`) turned into the agent's
 * number, which handlers and policy know. An unknown name is EBADF, as an unknown number is.
 */
function withAgentHandle<K extends OpName>(op: K, request: DecodedRequest<K>, origin: string | null, ctx: AgentContext): DecodedRequest<K> {
  if (!op.startsWith('fs.')) return request;
  // `source`: fs.copyrange's other file.
  const { fh, source } = request.args as { fh?: unknown; source?: unknown };
  // An unknown name stays as it is: no handle of the agent's has bit 31, so the handler answers
  // EBADF, after a handle of an earlier boot got its ESTALE.
  const agentFh = typeof fh === 'number' ? ctx.handles.resolve(origin, fh) ?? fh : fh;
  const agentSource = typeof source === 'number' ? ctx.handles.resolve(origin, source) ?? source : source;
  if (agentFh === fh && agentSource === source) return request;
  return { ...request, args: { ...request.args, fh: agentFh, ...(source === undefined ? {} : { source: agentSource }) } };
}

function refusedByPolicy<K extends OpName>(op: K, args: OpRequest<K>, ctx: AgentContext): boolean {
  if (!ctx.readOnly) return false;
  if (MUTATING.has(op)) return true;
  return op === 'fs.open' && writesWith((args as OpRequest<'fs.open'>).flags);
}

/**
 * `admit`, when given, sees each request's arguments once decoded and may refuse it (EPERM): a
 * device link admits only its own stream's handle (links.ts), checked without decoding
 * the request twice.
 */
export type Dispatcher = (op: string, data: Uint8Array, admit?: (op: OpName, args: unknown) => boolean) => Promise<Uint8Array>;

export function createDispatcher(table: HandlerTable, ctx: AgentContext, bootId: string): Dispatcher {
  const log = ctx.log;
  const replays = new ReplayCache();

  /** ESTALE for a request whose handles are of an earlier run of this agent (their numbers may name other files now). */
  const staleReply = (op: string, handleBoot: string | undefined): Uint8Array | undefined =>
    handleBoot !== undefined && handleBoot !== bootId
      ? encodeErrorReply(bootId, 'ESTALE', `${op}: the handle is from agent boot ${handleBoot}; the agent restarted`)
      : undefined;

  const execute = async <K extends OpName>(op: K, request: DecodedRequest<K>, origin: string | null): Promise<[Uint8Array, string]> => {
    try {
      const stale = staleReply(op, request.handleBoot);
      if (stale) return [stale, 'ESTALE'];
      if (refusedByPolicy(op, request.args, ctx)) {
        return [encodeErrorReply(bootId, 'EROFS', `${op}: the agent exports its root read-only`), 'EROFS'];
      }
      const handler = table[op] as OpHandler<K>;
      let result: OpReply<K>;
      try {
        result = await handler(request.args, ctx, request.caller, origin);
      } finally {
        if (CHANGING_SEARCH.has(op)) ctx.searched.clear();
      }
      return [encodeReply(op, bootId, result, request.version), 'OK']; // in the forms the master reads
    } catch (err) {
      const known = errnoOf(err);
      if (!known) log.error({ err, op }, 'op failed with an error that has no errno: answering EIO');
      return [encodeErrorReply(bootId, known ?? 'EIO', (err as Error).message ?? String(err)), known ?? 'EIO'];
    }
  };

  const one: Dispatcher = async (op, data, admit) => {
    const started = process.hrtime.bigint();
    if (!isOpName(op) || !table[op]) {
      log.warn({ op, requestId: requestIdOf(data) }, 'unknown op');
      return encodeErrorReply(bootId, 'ENOSYS', `operation ${op} is not served by this agent`);
    }
    let errno = 'OK';
    let replayed = false;
    const counted = op !== 'agent.hello';
    if (counted) ctx.serving.count++;
    agentMetrics.inFlight.inc();
    try {
      const decoded = decodeRequest(op, data); // a newer protocol's request throws EPROTONOSUPPORT
      if (admit && !admit(op, decoded.args)) {
        errno = 'EPERM';
        return encodeErrorReply(bootId, 'EPERM', `${op}: not allowed on this connection`);
      }
      const origin = originOfRequest(decoded.id);
      // The directories it names are watched before it runs, or what it answers could change
      // unreported (watch/change-feed.ts); no wait when they are watched already.
      const covered = ctx.changes.cover(op, decoded.args);
      if (covered !== undefined) await covered;
      // After that wait: a create this request follows, waiting behind the same one, named it.
      const request = withAgentHandle(op, decoded, origin, ctx);
      // So that the master that asked can tell this change from the slave's (watch/change-feed.ts).
      const changing = origin === null ? undefined : changedPaths(op, request.args, ctx);
      // A batch's requests run in one synchronous go: one moving a directory comes first.
      if (op === 'fs.rename' || op === 'fs.rmdir') ctx.changes.pathsMoved();
      if (origin !== null && changing !== undefined) ctx.changes.madeBy(origin, changing);
      if (!NOT_IDEMPOTENT.has(op)) {
        const [reply, outcome] = await execute(op, request, origin);
        errno = outcome;
        return reply;
      }
      replayed = true;
      const reply = await replays.run(`${op} ${request.id}`, async () => {
        replayed = false;
        const [bytes, outcome] = await execute(op, request, origin);
        errno = outcome;
        return bytes;
      });
      return reply;
    } catch (err) {
      errno = errnoOf(err) ?? 'EIO';
      return encodeErrorReply(bootId, errno, (err as Error).message ?? String(err));
    } finally {
      const micros = Number(process.hrtime.bigint() - started) / 1000;
      if (counted) ctx.serving.count--;
      agentMetrics.inFlight.dec();
      agentMetrics.ops.inc({ op, errno: replayed ? 'replayed' : errno });
      agentMetrics.latency.observe({ op }, micros / 1e6);
      if (log.isLevelEnabled('debug')) log.debug({ op, errno: replayed ? 'replayed' : errno, micros }, 'op');
    }
  };

  /**
   * Several requests in one message (protocol agent.batch): each started in order, exactly as
   * if they had come one by one (the first awaits of each keep that order: watch/change-feed.ts),
   * and answered each, in order, in one reply. A batch inside a batch is refused.
   */
  const batch: Dispatcher = async (_op, data) => {
    let requests: [string, Uint8Array][];
    try {
      const request = decodeRequest('agent.batch', data);
      // As for any request (the requests inside carry their own boots too).
      const stale = staleReply('agent.batch', request.handleBoot);
      if (stale) return stale;
      requests = request.args.requests;
    } catch (err) {
      return encodeErrorReply(bootId, errnoOf(err) ?? 'EPROTO', (err as Error).message ?? String(err));
    }
    agentMetrics.ops.inc({ op: 'agent.batch', errno: 'OK' });
    const replies = await Promise.all(requests.map(([op, bytes]) => (op === 'agent.batch'
      ? encodeErrorReply(bootId, 'EINVAL', 'a batch cannot hold a batch')
      : one(op, bytes))));
    return encodeReply('agent.batch', bootId, { replies });
  };

  return (op, data, admit) => (op === 'agent.batch' ? (admit ? Promise.resolve(encodeErrorReply(bootId, 'EPERM', 'a batch is not allowed on this connection')) : batch(op, data)) : one(op, data, admit));
}
