/**
 * Message framing: every request and reply is one msgpack map. File data inside it is a msgpack
 * `bin` (raw bytes, copied once, never base64). Decoding is bounded so a hostile length field
 * cannot make us allocate more than the message itself holds.
 *
 *   request: { v: version, id: request id, hb?: handle boot, c?: caller, a: op arguments }
 *   reply:   { v: version, boot: agent boot id, ok: result } | { v, boot, err: { errno, message } }
 *   event:   { v: version, e: process event }   (published, not a reply: see ProcEvent)
 *   changes: { v: version, chg: change message } (published on the agent's change subject)
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import * as v from 'valibot';
import { callerSchema, type Caller } from './caller.js';
import { isErrnoName } from './errno.js';
import { ProtocolError, SlaveError } from './errors.js';
import { msgpackBoundsProblem } from './msgpack-bounds.js';
import { changeMessage, type ChangeMessage } from './changes.js';
import { devEvent, ops, procEvent, type DevEvent, type OpName, type OpReply, type OpRequest, type ProcEvent } from './ops.js';
import { check, int } from './schema.js';
import { MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from './version.js';
import { changesOutgoingForm, outgoingForm } from './wire-forms.js';

const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder({
  maxStrLength: 1 << 20,
  maxBinLength: 256 << 20,
  maxArrayLength: 1 << 20,
  // A spawn's environment is a map: a CI job's can hold hundreds of variables. Entries take at
  // least two bytes each, and msgpack-bounds.ts refuses a map declaring more than the bytes left.
  maxMapLength: 1 << 16,
  maxExtLength: 0,
});

/**
 * hb: the agent boot the request's handle (fh, cursor, procId) came from; absent without one.
 * c: who the operation is for (caller.ts); absent: the agent acts as itself, as before it.
 */
const versionOnly = v.object({ v: int });
const requestEnvelope = v.object({
  v: int, id: v.pipe(v.string(), v.maxLength(128)), hb: v.optional(v.pipe(v.string(), v.maxLength(64))), c: v.optional(callerSchema),
  a: v.optional(v.unknown()),
});
/**
 * An error reply names `err`; any other has its result in `ok` (so it must be there). Told apart
 * by that key rather than by a union of both: a union tries the error's shape first, and every
 * answer that is not an error (nearly all) built that shape's issues and their messages before
 * passing the second, a few microseconds of the mount's per reply, and a batch's reply holds one
 * per request.
 */
const errorReplyEnvelope = v.object({
  v: int,
  boot: v.string(),
  err: v.object({ errno: v.string(), message: v.string() }),
});
const okReplyEnvelope = v.object({ v: int, boot: v.string(), ok: v.unknown() });
const isErrorReply = (message: unknown): boolean => typeof message === 'object' && message !== null && 'err' in message;

/** No message of ours nests deeper than 5 (a readdir reply's attributes): room to grow. */
const MAX_DEPTH = 16;

function unpack(bytes: Uint8Array, what: string): unknown {
  // Before the decoder, which would allocate what hostile headers declare (msgpack-bounds.ts).
  const problem = msgpackBoundsProblem(bytes, MAX_DEPTH);
  if (problem !== undefined) throw new ProtocolError(`undecodable ${what}: ${problem}`);
  try {
    return decoder.decode(bytes);
  } catch (cause) {
    throw new ProtocolError(`undecodable ${what}: ${(cause as Error).message}`, { cause });
  }
}

// Byte fields larger than this skip msgpack's buffer (which grows by doubling and is then
// copied out): the envelope is encoded with an empty placeholder in last place, and the bytes
// are copied once, straight into the final message.
const SPLICE_THRESHOLD = 16 * 1024;
const EMPTY_BIN = new Uint8Array(0);
const EMPTY_BIN_ENCODED = [0xc4, 0x00];

/**
 * Room a byte buffer may keep in front of its bytes for the message's head (the envelope before
 * the bin), so that a request can be sent without copying its data: 256 bytes hold any head of
 * ours (an `fs.write`'s is about 90).
 */
const MESSAGE_HEADROOM = 256;

/**
 * Memory made by allocWithHeadroom: its first MESSAGE_HEADROOM bytes are free for a message
 * head, written there each time the bytes after them are encoded. Whoever takes such memory
 * promises that a message built on it is sent before the same bytes are encoded again with
 * another head (the mount's write chunks, the agent's read buffers: each message is sent before
 * its bytes are encoded again).
 */
const withHeadroom = new WeakSet<ArrayBufferLike>();

/**
 * `length` uninitialised bytes with the head's room in front of them, in memory of their own: a
 * request or reply carrying them as its byte field is built around them, not copied.
 */
export function allocWithHeadroom(length: number): Buffer {
  const memory = Buffer.allocUnsafeSlow(MESSAGE_HEADROOM + length);
  withHeadroom.add(memory.buffer);
  return memory.subarray(MESSAGE_HEADROOM);
}

function bytesField(body: object): string | undefined {
  for (const [key, value] of Object.entries(body)) {
    if (value instanceof Uint8Array && value.length >= SPLICE_THRESHOLD) return key;
  }
  return undefined;
}

/**
 * Encodes `{ ...head, [outer]: body }` where `body[field]` holds bytes. The field is moved to
 * the end of the innermost map so that the encoding ends with its (placeholder) bin.
 */
function encodeSpliced(head: object, outer: string, body: Record<string, unknown>, field: string, parts?: Uint8Array[]): Uint8Array {
  const data = body[field] as Uint8Array;
  // The other fields, then the placeholder: copied, not spread and deleted from (a `delete`
  // turns the object into a slow dictionary, for every device byte and every write).
  const inner: Record<string, unknown> = {};
  for (const key in body) if (key !== field) inner[key] = body[key];
  inner[field] = EMPTY_BIN;
  const prefix = encoder.encode({ ...head, [outer]: inner });
  const cut = prefix.length - EMPTY_BIN_ENCODED.length;
  if (prefix[cut] !== EMPTY_BIN_ENCODED[0] || prefix[cut + 1] !== EMPTY_BIN_ENCODED[1]) {
    throw new Error('codec: the byte field did not encode last'); // a bug of ours, not input
  }
  const headLength = cut + 5;
  if (parts === undefined && data.byteOffset === MESSAGE_HEADROOM && headLength <= MESSAGE_HEADROOM && withHeadroom.has(data.buffer)) {
    // The head goes in front of the bytes, where they already are: no 1 MiB buffer to allocate
    // and fill per write (a sixth of the mount's CPU in a sequential write, and most of its GC).
    const out = Buffer.from(data.buffer, data.byteOffset - headLength, headLength + data.length);
    out.set(prefix.subarray(0, cut), 0);
    out[cut] = 0xc6; // bin 32
    out.writeUInt32BE(data.length, cut + 1);
    return out;
  }
  const chunks = parts ?? [data];
  const length = chunks.reduce((sum, c) => sum + c.length, 0);
  const out = Buffer.allocUnsafe(cut + 5 + length);
  out.set(prefix.subarray(0, cut), 0);
  out[cut] = 0xc6; // bin 32
  out.writeUInt32BE(length, cut + 1);
  let at = cut + 5;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

function encodeEnvelope(head: object, outer: string, body: object): Uint8Array {
  const field = bytesField(body);
  if (field === undefined) return encoder.encode({ ...head, [outer]: body });
  return encodeSpliced(head, outer, body as Record<string, unknown>, field);
}

/**
 * `version`: the protocol the agent speaks (an older agent is sent protocol 1's forms, and a
 * request those cannot carry throws EILSEQ: protocol/wire-forms.ts).
 */
export function encodeRequest<K extends OpName>(
  _op: K, id: string, args: OpRequest<K>, handleBoot?: string, caller?: Caller, version = PROTOCOL_VERSION,
): Uint8Array {
  const head: { v: number; id: string; hb?: string; c?: Caller } = { v: version, id };
  if (handleBoot !== undefined) head.hb = handleBoot;
  if (caller !== undefined) head.c = caller;
  return encodeEnvelope(head, 'a', outgoingForm(args, version, 'request'));
}

export interface DecodedRequest<K extends OpName> {
  id: string;
  version: number;
  /** The agent boot the request's handle came from, when it carries one. */
  handleBoot: string | undefined;
  /** Who the operation is for, when the master said. */
  caller: Caller | undefined;
  args: OpRequest<K>;
}

/** Decodes and validates a request; throws ProtocolError on anything malformed. */
export function decodeRequest<K extends OpName>(op: K, bytes: Uint8Array): DecodedRequest<K> {
  const message = unpack(bytes, 'request');
  // The version before the shape: a newer peer's request may look like nothing this version knows,
  // and must learn that its version is the problem (EPROTONOSUPPORT), not its message (EPROTO).
  // Read from the envelope when it has ours, else alone (one check per request, not two).
  const envelope = check(requestEnvelope, message);
  const version = envelope.ok ? envelope : check(versionOnly, message);
  if (version.ok && version.value.v > PROTOCOL_VERSION) {
    throw new SlaveError('EPROTONOSUPPORT', `protocol ${version.value.v} is newer than this agent's ${PROTOCOL_VERSION}`);
  }
  if (version.ok && version.value.v < MIN_PROTOCOL_VERSION) {
    throw new SlaveError('EPROTONOSUPPORT', `protocol ${version.value.v} is older than this agent's oldest, ${MIN_PROTOCOL_VERSION}`);
  }
  if (!envelope.ok) throw new ProtocolError(`bad request envelope: ${envelope.problem}`);
  const args = check(ops[op].req, envelope.value.a ?? {});
  if (!args.ok) throw new ProtocolError(`bad ${op} request: ${args.problem}`);
  const { id, v: requestVersion, hb, c } = envelope.value;
  return { id, version: requestVersion, handleBoot: hb, caller: c, args: args.value as OpRequest<K> };
}

/** Best effort: the id of a request we could not fully decode, to echo in the error reply. */
export function requestIdOf(bytes: Uint8Array): string | undefined {
  try {
    const parsed = check(requestEnvelope, unpack(bytes, 'request'));
    return parsed.ok ? parsed.value.id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `version`: the request's, whose forms the result takes (protocol/wire-forms.ts); the
 * envelope's `v` is always the agent's own, as in error replies.
 */
export function encodeReply<K extends OpName>(_op: K, boot: string, result: OpReply<K>, version = PROTOCOL_VERSION): Uint8Array {
  return encodeEnvelope({ v: PROTOCOL_VERSION, boot }, 'ok', outgoingForm(result, version, 'reply'));
}

export function encodeErrorReply(boot: string, errno: string, message: string): Uint8Array {
  return encoder.encode({ v: PROTOCOL_VERSION, boot, err: { errno, message } });
}

/** Most of an agent's error message a master keeps. */
const MAX_MESSAGE = 2048;

/**
 * An agent's error message as a master may print it: masters show it on terminals and in logs
 * as it is, so control characters (a terminal's escape sequences) are spelt out and the length
 * is bounded.
 */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return clean.length > MAX_MESSAGE ? `${clean.slice(0, MAX_MESSAGE)}...` : clean;
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
  const message = unpack(bytes, 'reply');
  if (isErrorReply(message)) {
    const envelope = check(errorReplyEnvelope, message);
    if (!envelope.ok) throw new ProtocolError(`bad reply envelope: ${envelope.problem}`);
    const { boot, err } = envelope.value;
    const known = isErrnoName(err.errno);
    const text = known ? err.message : `${err.message} (errno ${err.errno.slice(0, 32)})`;
    return { boot, ok: false, error: new SlaveError(known ? err.errno : 'EIO', printable(text)) };
  }
  const envelope = check(okReplyEnvelope, message);
  if (!envelope.ok) throw new ProtocolError(`bad reply envelope: ${envelope.problem}`);
  const reply = envelope.value;
  const result = check(ops[op].res, reply.ok);
  if (!result.ok) throw new ProtocolError(`bad ${op} reply: ${result.problem}`);
  return { boot: reply.boot, ok: true, result: result.value as OpReply<K> };
}

const eventEnvelope = v.object({ v: int, e: v.unknown() });

export function encodeEvent(event: ProcEvent): Uint8Array {
  return encodeEnvelope({ v: PROTOCOL_VERSION }, 'e', event);
}

/** An output event whose data is `parts` joined, copied once, straight into the message. */
export function encodeOutputEvent(procId: number, seq: number, stream: 'stdout' | 'stderr', parts: Uint8Array[]): Uint8Array {
  return encodeSpliced({ v: PROTOCOL_VERSION }, 'e', { procId, seq, stream, data: EMPTY_BIN }, 'data', parts);
}

/**
 * An output event built around `data` where it lies, when allocWithHeadroom made its memory
 * (else copied, as encodeOutputEvent would): the message shares the memory.
 */
export function encodeOutputEventInPlace(procId: number, seq: number, stream: 'stdout' | 'stderr', data: Uint8Array): Uint8Array {
  return encodeSpliced({ v: PROTOCOL_VERSION }, 'e', { procId, seq, stream, data }, 'data');
}

/** Decodes and validates a process event; throws ProtocolError on anything malformed. */
export function decodeEvent(bytes: Uint8Array): ProcEvent {
  const envelope = check(eventEnvelope, unpack(bytes, 'event'));
  if (!envelope.ok) throw new ProtocolError(`bad event envelope: ${envelope.problem}`);
  const event = check(procEvent, envelope.value.e);
  if (!event.ok) throw new ProtocolError(`bad process event: ${event.problem}`);
  return event.value;
}

/**
 * A device event (dev.stream): data copied once, straight into the message, with the inputs
 * acknowledged so far (dev.input).
 */
export function encodeDevData(fh: number, seq: number, parts: Uint8Array[], acked: number): Uint8Array {
  return encodeSpliced({ v: PROTOCOL_VERSION }, 'e', { fh, seq, acked, data: EMPTY_BIN }, 'data', parts);
}

export function encodeDevAck(fh: number, acked: number, errno: string | null): Uint8Array {
  return encodeEnvelope({ v: PROTOCOL_VERSION }, 'e', { fh, ack: { acked, errno } });
}

export function encodeDevEnd(fh: number, seq: number, errno: string | null): Uint8Array {
  return encodeEnvelope({ v: PROTOCOL_VERSION }, 'e', { fh, seq, end: { errno } });
}

/** Decodes and validates a device event; throws ProtocolError on anything malformed. */
export function decodeDevEvent(bytes: Uint8Array): DevEvent {
  const envelope = check(eventEnvelope, unpack(bytes, 'event'));
  if (!envelope.ok) throw new ProtocolError(`bad event envelope: ${envelope.problem}`);
  const event = check(devEvent, envelope.value.e);
  if (!event.ok) throw new ProtocolError(`bad device event: ${event.problem}`);
  return event.value;
}

const changeEnvelope = v.object({ v: int, chg: v.unknown() });

/** agent --change feed--> masters: `{ v, chg: ChangeMessage }` (changes.ts). */
export function encodeChangeMessage(message: ChangeMessage): Uint8Array {
  return encoder.encode({ v: PROTOCOL_VERSION, chg: { ...message, changes: changesOutgoingForm(message.changes) } });
}

/** Decodes and validates a change feed message; throws ProtocolError on anything malformed. */
export function decodeChangeMessage(bytes: Uint8Array): ChangeMessage {
  const envelope = check(changeEnvelope, unpack(bytes, 'change message'));
  if (!envelope.ok) throw new ProtocolError(`bad change message envelope: ${envelope.problem}`);
  const message = check(changeMessage, envelope.value.chg);
  if (!message.ok) throw new ProtocolError(`bad change message: ${message.problem}`);
  return message.value;
}
