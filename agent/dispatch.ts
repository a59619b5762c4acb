/**
 * Turns one request message into one reply message: decode and validate, refuse what policy
 * forbids, run the op's handler, and encode its result or its errno. Never throws: whatever
 * arrives, the requester gets an answer and the agent keeps serving.
 */
import {
  PROTOCOL_VERSION, decodeRequest, encodeErrorReply, encodeReply, errnoOf, isOpName, requestIdOf,
  type OpName, type OpReply, type OpRequest,
} from '../protocol/index.js';
import type { AgentContext, HandlerTable, OpHandler } from './context.js';
import { writesWith } from './fs/file-ops.js';

/** Ops that change the slave's filesystem: refused with EROFS on a read-only agent. */
const MUTATING: ReadonlySet<OpName> = new Set<OpName>([
  'fs.create', 'fs.write', 'fs.ftruncate', 'fs.truncate', 'fs.unlink', 'fs.rename', 'fs.link',
  'fs.symlink', 'fs.mkdir', 'fs.rmdir', 'fs.chmod', 'fs.chown', 'fs.utimens', 'fs.mknod',
  'fs.setxattr', 'fs.removexattr', 'fs.fchmod', 'fs.fchown', 'fs.futimens',
]);

function refusedByPolicy<K extends OpName>(op: K, args: OpRequest<K>, ctx: AgentContext): boolean {
  if (!ctx.readOnly) return false;
  if (MUTATING.has(op)) return true;
  return op === 'fs.open' && writesWith((args as OpRequest<'fs.open'>).flags);
}

export type Dispatcher = (op: string, data: Uint8Array) => Promise<Uint8Array>;

export function createDispatcher(table: HandlerTable, ctx: AgentContext, bootId: string): Dispatcher {
  const log = ctx.log;
  return async (op, data) => {
    const started = process.hrtime.bigint();
    if (!isOpName(op) || !table[op]) {
      log.warn({ op, requestId: requestIdOf(data) }, 'unknown op');
      return encodeErrorReply(bootId, 'ENOSYS', `operation ${op} is not served by this agent`);
    }
    let errno = 'OK';
    try {
      const request = decodeRequest(op, data);
      if (request.version > PROTOCOL_VERSION) {
        errno = 'EPROTONOSUPPORT';
        return encodeErrorReply(bootId, errno, `protocol ${request.version} is newer than this agent's ${PROTOCOL_VERSION}`);
      }
      if (refusedByPolicy(op, request.args, ctx)) {
        errno = 'EROFS';
        return encodeErrorReply(bootId, errno, `${op}: the agent exports its root read-only`);
      }
      const handler = table[op] as OpHandler<typeof op>;
      const result: OpReply<typeof op> = await handler(request.args, ctx);
      return encodeReply(op, bootId, result);
    } catch (err) {
      const known = errnoOf(err);
      errno = known ?? 'EIO';
      if (!known) log.error({ err, op }, 'op failed with an error that has no errno: answering EIO');
      return encodeErrorReply(bootId, errno, (err as Error).message ?? String(err));
    } finally {
      if (log.isLevelEnabled('debug')) {
        const micros = Number(process.hrtime.bigint() - started) / 1000;
        log.debug({ op, errno, micros }, 'op');
      }
    }
  };
}
