/**
 * A device link: a direct connection from a master to the agent for one pushed device
 * (`dev.stream`), beside the bus. It carries the same messages the bus would (the stream's
 * `dev.*` requests and their replies, its `DevEvent`s), framed, so a keystroke and its echo
 * cross one TCP connection each way instead of two NATS hops each way (docs/architecture.md,
 * "Device links"). The agent offers it in the `dev.stream` reply; the master connects when it
 * can, and the stream stays on the bus when it cannot or when the link breaks.
 *
 * The connection is TLS 1.2 with a pre-shared key (RFC 4279, ECDHE-PSK: forward secret, no
 * certificates): the key and its identity are made for one stream and travel only in the reply
 * to the master that opened it, over the bus that authenticated it.
 *
 * Frames, both ways: u32 length of what follows (big-endian), u8 kind, then
 *   REQUEST (master → agent): u32 call id (0: no reply wanted), u8 op length, op (ASCII), request
 *   REPLY   (agent → master): u32 call id, reply
 *   EVENT   (agent → master): event
 *   ROUTED  (agent → master, session links): u8 subject length, subject (ASCII), event: what the
 *           bus would have published on that subject (a process's output, for a master that
 *           asked for it on its link: `proc.spawn`'s `linkOutput`)
 * where request, reply and event are exactly the bytes codec.ts makes for the bus.
 */
import * as v from 'valibot';
import { ProtocolError } from './errors.js';
import { bytes, u16 } from './schema.js';

/** TLS settings both ends use: PSK with an ephemeral ECDH exchange, which TLS 1.3 in Node does not offer. */
export const LINK_TLS = {
  ciphers: 'ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES128-CBC-SHA256',
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.2',
} as const;

/** Bytes of a link's key (a PSK of 256 bits). */
export const LINK_KEY_BYTES = 32;

/** What the `dev.stream` reply offers: where to connect, and the stream's own identity and key. */
export const linkOffer = v.object({
  host: v.pipe(v.string(), v.maxLength(255)),
  port: v.pipe(u16, v.minValue(1)),
  identity: v.pipe(v.string(), v.regex(/^[0-9a-f]{8,64}$/, 'not a link identity')),
  key: v.pipe(bytes, v.check((key) => key.length === LINK_KEY_BYTES, `a link key is ${LINK_KEY_BYTES} bytes`)),
});
export type LinkOffer = v.InferOutput<typeof linkOffer>;

/** 127.0.0.0/8, ::1, and IPv4 loopback written as IPv6. */
export function isLoopbackAddress(host: string): boolean {
  return /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1' || /^::ffff:127\./i.test(host) || host === 'localhost';
}

/**
 * Where a master connects for an offer. An agent that reached its NATS server over loopback shares
 * a machine with it, and offers a loopback address (it listens on every address then): a master
 * that reached that server at another host reaches the agent there too. `busUrl`: the server the
 * master is connected to now (a URL, or host:port as nats.js gives it).
 */
export function linkHost(offerHost: string, busUrl: string): string {
  if (!isLoopbackAddress(offerHost)) return offerHost;
  let server: string;
  try {
    // nats.js names its server host:port, without a scheme.
    server = new URL(busUrl.includes('://') ? busUrl : `nats://${busUrl}`).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return offerHost;
  }
  return server === '' || isLoopbackAddress(server) ? offerHost : server;
}

export const LinkFrame = { REQUEST: 1, REPLY: 2, EVENT: 3, ROUTED: 4 } as const;

export type LinkMessage =
  | { kind: typeof LinkFrame.REQUEST; callId: number; op: string; data: Uint8Array }
  | { kind: typeof LinkFrame.REPLY; callId: number; data: Uint8Array }
  | { kind: typeof LinkFrame.EVENT; data: Uint8Array }
  | { kind: typeof LinkFrame.ROUTED; subject: string; data: Uint8Array };

/** A request frame's head (length, kind, call id, op) written into `target`: the request goes behind it. */
function writeRequestHeader(target: Buffer, callId: number, opBytes: Buffer, requestLength: number): Buffer {
  target.writeUInt32BE(1 + 4 + 1 + opBytes.length + requestLength, 0);
  target[4] = LinkFrame.REQUEST;
  target.writeUInt32BE(callId, 5);
  target[9] = opBytes.length;
  opBytes.copy(target, 10);
  return target;
}

/** A request frame's head alone (`callId` 0 when no reply is wanted): the request follows it as it is. */
export function linkRequestHeader(callId: number, op: string, requestLength: number): Buffer {
  const opBytes = Buffer.from(op, 'latin1');
  return writeRequestHeader(Buffer.allocUnsafe(10 + opBytes.length), callId, opBytes, requestLength);
}

/** A whole request frame in one buffer (for small requests: one write). */
export function encodeLinkRequest(callId: number, op: string, request: Uint8Array): Buffer {
  const opBytes = Buffer.from(op, 'latin1');
  const frame = writeRequestHeader(Buffer.allocUnsafe(10 + opBytes.length + request.length), callId, opBytes, request.length);
  frame.set(request, 10 + opBytes.length);
  return frame;
}

/** A reply frame's head (length, kind, call id) written into `target`: the reply goes behind it. */
function writeReplyHeader(target: Buffer, callId: number, replyLength: number): Buffer {
  target.writeUInt32BE(1 + 4 + replyLength, 0);
  target[4] = LinkFrame.REPLY;
  target.writeUInt32BE(callId, 5);
  return target;
}

/** A reply frame's head alone: the reply follows it as it is. */
export function linkReplyHeader(callId: number, replyLength: number): Buffer {
  return writeReplyHeader(Buffer.allocUnsafe(9), callId, replyLength);
}

/** A whole reply frame in one buffer. */
export function encodeLinkReply(callId: number, reply: Uint8Array): Buffer {
  const frame = writeReplyHeader(Buffer.allocUnsafe(9 + reply.length), callId, reply.length);
  frame.set(reply, 9);
  return frame;
}

/** The frame's header alone: the event follows it as it is, with no copy (a socket write of both). */
export function linkEventHeader(eventLength: number): Buffer {
  return writeEventHeader(Buffer.allocUnsafe(5), eventLength);
}

/** A whole event frame in one buffer (the event copied behind its header): for small events, one write. */
export function encodeLinkEvent(event: Uint8Array): Buffer {
  const frame = writeEventHeader(Buffer.allocUnsafe(5 + event.length), event.length);
  frame.set(event, 5);
  return frame;
}

/** A routed event's head (length, kind, subject): the event follows it as it is. */
export function linkRoutedHeader(subject: string, eventLength: number): Buffer {
  return writeRoutedHeader(Buffer.allocUnsafe(6 + Buffer.byteLength(subject, 'latin1')), subject, eventLength);
}

/** A whole routed event frame in one buffer (the event copied behind its head): for small events. */
export function encodeLinkRouted(subject: string, event: Uint8Array): Buffer {
  const head = 6 + Buffer.byteLength(subject, 'latin1');
  const frame = writeRoutedHeader(Buffer.allocUnsafe(head + event.length), subject, event.length);
  frame.set(event, head);
  return frame;
}

function writeRoutedHeader(target: Buffer, subject: string, eventLength: number): Buffer {
  const subjectLength = target.write(subject, 6, 'latin1');
  if (subjectLength > 255 || subjectLength !== subject.length) throw new ProtocolError(`subject ${subject} cannot be routed on a link`);
  target.writeUInt32BE(2 + subjectLength + eventLength, 0);
  target[4] = LinkFrame.ROUTED;
  target[5] = subjectLength;
  return target;
}

function writeEventHeader(target: Buffer, eventLength: number): Buffer {
  target.writeUInt32BE(eventLength + 1, 0);
  target[4] = LinkFrame.EVENT;
  return target;
}

/**
 * Cuts a link's byte stream into messages. A frame longer than `maxFrame`, of an unknown kind,
 * or too short for its kind is a ProtocolError: the peer is not speaking this protocol, and the
 * link is closed (the stream goes on over the bus).
 */
export class LinkFrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrame: number) {}

  /** The whole messages `chunk` completes, in order. */
  push(chunk: Buffer): LinkMessage[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const messages: LinkMessage[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const length = head.readUInt32BE(0);
      if (length < 1 || length > this.maxFrame) throw new ProtocolError(`device link frame of ${length} bytes (at most ${this.maxFrame})`);
      if (this.buffered < 4 + length) break;
      const frame = this.take(4 + length).subarray(4);
      messages.push(parseFrame(frame));
    }
    return messages;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) return first;
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] as Buffer;
  }

  private take(n: number): Buffer {
    const whole = this.peek(n);
    this.buffered -= n;
    if (whole.length === n) this.chunks.shift();
    else this.chunks[0] = whole.subarray(n);
    return whole.subarray(0, n);
  }
}

function parseFrame(frame: Buffer): LinkMessage {
  const kind = frame[0];
  if (kind === LinkFrame.EVENT) return { kind, data: frame.subarray(1) };
  if (kind === LinkFrame.ROUTED && frame.length >= 2 && frame.length >= 2 + (frame[1] as number)) {
    const end = 2 + (frame[1] as number);
    return { kind, subject: frame.toString('latin1', 2, end), data: frame.subarray(end) };
  }
  if (kind === LinkFrame.REPLY && frame.length >= 5) return { kind, callId: frame.readUInt32BE(1), data: frame.subarray(5) };
  if (kind === LinkFrame.REQUEST && frame.length >= 6) {
    const opLength = frame[5] as number;
    if (frame.length >= 6 + opLength) {
      return { kind, callId: frame.readUInt32BE(1), op: frame.toString('latin1', 6, 6 + opLength), data: frame.subarray(6 + opLength) };
    }
  }
  throw new ProtocolError(`device link frame of kind ${String(kind)} and ${frame.length} bytes is not one of this protocol's`);
}
