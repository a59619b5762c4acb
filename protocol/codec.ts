/**
 * Message framing: every request and reply is one msgpack map. File data inside it is a msgpack
 * `bin` (raw bytes, copied once, never base64). Decoding is bounded so a hostile length field
 * cannot make us allocate more than the message itself holds.
 *
 *   request: { v: version, id: request id, a: op arguments }
 *   reply:   { v: version, boot: agent boot id, ok: result } | { v, boot, err: { errno, message } }
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import { z } from 'zod';
import { isErrnoName } from './errno.js';
import { ProtocolError, SlaveError } from './errors.js';
import { ops, type OpName, type OpReply, type OpRequest } from './ops.js';
import { PROTOCOL_VERSION } from './version.js';

const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder({
  maxStrLength: 1 << 20,
  maxBinLength: 256 << 20,
  maxArrayLength: 1 << 20,
  maxMapLength: 64,
  maxExtLength: 0,
});

const requestEnvelope = z.object({ v: z.number().int(), id: z.string().max(128), a: z.unknown() });
const replyEnvelope = z.union([
  z.object({ v: z.number().int(), boot: z.string(), ok: z.unknown() }),
  z.object({
    v: z.number().int(),
    boot: z.string(),
    err: z.object({ errno: z.string(), message: z.string() }),
  }),
]);

function unpack(bytes: Uint8Array, what: string): unknown {
  try {
    return decoder.decode(bytes);
  } catch (cause) {
    throw new ProtocolError(`undecodable ${what}: ${(cause as Error).message}`, { cause });
  }
}

function describe(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

export function encodeRequest<K extends OpName>(_op: K, id: string, args: OpRequest<K>): Uint8Array {
  return encoder.encode({ v: PROTOCOL_VERSION, id, a: args });
}

export interface DecodedRequest<K extends OpName> {
  id: string;
  version: number;
  args: OpRequest<K>;
}

/** Decodes and validates a request; throws ProtocolError on anything malformed. */
export function decodeRequest<K extends OpName>(op: K, bytes: Uint8Array): DecodedRequest<K> {
  const envelope = requestEnvelope.safeParse(unpack(bytes, 'request'));
  if (!envelope.success) throw new ProtocolError(`bad request envelope: ${describe(envelope.error)}`);
  const args = ops[op].req.safeParse(envelope.data.a ?? {});
  if (!args.success) throw new ProtocolError(`bad ${op} request: ${describe(args.error)}`);
  return { id: envelope.data.id, version: envelope.data.v, args: args.data as OpRequest<K> };
}

/** Best effort: the id of a request we could not fully decode, to echo in the error reply. */
export function requestIdOf(bytes: Uint8Array): string | undefined {
  try {
    const parsed = requestEnvelope.safeParse(decoder.decode(bytes));
    return parsed.success ? parsed.data.id : undefined;
  } catch {
    return undefined;
  }
}

export function encodeReply<K extends OpName>(_op: K, boot: string, result: OpReply<K>): Uint8Array {
  return encoder.encode({ v: PROTOCOL_VERSION, boot, ok: result });
}

export function encodeErrorReply(boot: string, errno: string, message: string): Uint8Array {
  return encoder.encode({ v: PROTOCOL_VERSION, boot, err: { errno, message } });
}

export type DecodedReply<K extends OpName> =
  | { boot: string; ok: true; result: OpReply<K> }
  | { boot: string; ok: false; error: SlaveError };

/**
 * Decodes a reply. An error reply yields the agent's errno as a SlaveError (returned, not thrown,
 * so the caller still learns the boot id); a reply that does not match the op's schema throws a
 * ProtocolError (the agent is treated as untrusted too).
 */
export function decodeReply<K extends OpName>(op: K, bytes: Uint8Array): DecodedReply<K> {
  const envelope = replyEnvelope.safeParse(unpack(bytes, 'reply'));
  if (!envelope.success) throw new ProtocolError(`bad reply envelope: ${describe(envelope.error)}`);
  const reply = envelope.data;
  if ('err' in reply) {
    const errno = isErrnoName(reply.err.errno) ? reply.err.errno : 'EIO';
    return { boot: reply.boot, ok: false, error: new SlaveError(errno, reply.err.message) };
  }
  const result = ops[op].res.safeParse(reply.ok);
  if (!result.success) throw new ProtocolError(`bad ${op} reply: ${describe(result.error)}`);
  return { boot: reply.boot, ok: true, result: result.data as OpReply<K> };
}
