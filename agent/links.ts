/**
 * The agent's end of links (protocol/link.ts): a TLS-PSK listener beside the bus, for two kinds
 * of offer, each an identity and a key of its own, good for one connection:
 *
 * - a device link, for one pushed device a master opens asking for a link: that stream's
 *   requests and events only. While it is up the device's events go down it; when it breaks (or
 *   never comes) they go on the bus, where the stream's sequence numbers and resends make up for
 *   what was in flight.
 * - a session link (`agent.link`), for a master's client: every request it would send on the bus,
 *   served by the same dispatcher in the order they arrive, and their replies; and the output of
 *   the processes it started asking for it (`proc.spawn`'s `linkOutput` names the link), while the
 *   link is up: then on the bus, where the output's sequence numbers and resends make up for what
 *   was in flight. The change feed and device events stay where they were.
 *
 *   master --TLS: dev.input, dev.credit, ...--> Links --dispatch--> device
 *   device --events--> Links --TLS--> master
 *   master --TLS: any request--> Links --dispatch--> handlers --reply--> master
 *   process --output--> Links --TLS: routed events--> master
 */
import { randomBytes } from 'node:crypto';
import net, { type Socket } from 'node:net';
import type { SecureContext, TLSSocket, TLSSocketOptions } from 'node:tls';
import type { Logger } from 'pino';
import {
  LINK_KEY_BYTES, LINK_TLS, LinkFrame, LinkFrameReader, encodeLinkEvent, encodeLinkReply, encodeLinkRouted, linkEventHeader, linkReplyHeader,
  linkRoutedHeader, type LinkOffer, type OpName,
} from '../protocol/index.js';
import { agentMetrics } from './agent-metrics.js';
import type { EventSink } from './dev/device-push.js';

/**
 * How a link's requests are served: the agent's dispatcher (dispatch.ts), with `admit` seeing each
 * request's arguments once decoded. Named here so that this file need not import the dispatcher,
 * which imports the handlers' context, which names this file.
 */
export type LinkDispatch = (op: string, data: Uint8Array, admit?: (op: OpName, args: unknown) => boolean) => Promise<Uint8Array>;

/**
 * Sends what the bus would have published on `subject` down a session link instead; false when
 * the link is gone (the caller publishes it on the bus).
 */
export type LinkRoute = (subject: string, event: Uint8Array) => boolean;

/** Told when a reply has been written out on a link (its buffer may be used again: fs/read-buffers.ts). */
export type ReplyWritten = (reply: Uint8Array) => void;

/** What a link may ask: its own stream's ops, nothing else of the agent's. */
const LINK_OPS: ReadonlySet<string> = new Set(['dev.input', 'dev.credit', 'dev.resend', 'dev.termios', 'dev.flush', 'dev.break']);
/** An offer nobody took within this long is withdrawn (the master could not reach us: it stays on the bus). */
const OFFER_MS = 30_000;
/** Events and replies up to this size are copied behind their frame's header; larger ones are written beside it. */
const SMALL_EVENT = 16 * 1024;
/** How long a connection may take to prove it holds a key. */
const HANDSHAKE_MS = 10_000;
/** Offers not yet taken, at most (each lives OFFER_MS). */
const MAX_OFFERS = 4096;
/** Connections still proving it at once; more are dropped (nobody makes a few dozen links in a breath). */
const MAX_HANDSHAKES = 64;

/**
 * One frame down a link: a small one (`whole`: the payload copied behind its head) in one write,
 * so a keystroke's echo costs a copy of a few bytes, not a vectored write; a large one (a read's
 * data, a chunk of output) as its head (`head`) and the payload beside it, uncopied. `written`:
 * told once the socket has taken the payload (its memory may be used again).
 */
function writeFrame(
  socket: TLSSocket, payload: Uint8Array, whole: () => Buffer, head: () => Buffer, written?: () => void,
): void {
  if (payload.length <= SMALL_EVENT) {
    socket.write(whole());
    written?.();
    return;
  }
  socket.cork();
  socket.write(head());
  socket.write(payload, written === undefined ? undefined : () => written());
  socket.uncork();
}

/**
 * node:tls and the links' secure context, made at the first connection: an agent no master links
 * to does not carry them (nats.js loads the module; a secure context with it is 1.3 MiB resident
 * on a bare `node`: docs/performance.md, "The idle agent with device links").
 */
let tlsModule: Promise<typeof import('node:tls')> | undefined;
function loadTls(): Promise<typeof import('node:tls')> {
  tlsModule ??= import('node:tls');
  return tlsModule;
}

/**
 * Where an agent offers links (--link): `auto` listens on the address the NATS server sees
 * the agent at (masters that reach the server reach it there, as a rule), `off` offers none.
 */
export type LinkSetting = 'auto' | 'off' | { host: string; port: number };

interface Offer {
  /** The device stream's handle; undefined for a session link. */
  readonly fh: number | undefined;
  readonly key: Buffer;
  socket: TLSSocket | undefined;
  taken: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** A stream's side of its offer: where its events go, and the end of the offer with the device. */
export interface OfferedLink {
  readonly offer: LinkOffer;
  /** Down the link while it is up, else `fallback`. */
  readonly sink: EventSink;
  close(): void;
}

export class Links {
  private readonly offers = new Map<string, Offer>();
  /** Which offer each connection named in its handshake. */
  private readonly named = new WeakMap<TLSSocket, string>();
  /** The session links up now, by the identity of the offer each took. */
  private readonly sessions = new Map<string, TLSSocket>();

  private readonly server: net.Server;
  private boundPort = 0;
  private context: SecureContext | undefined;
  private handshakes = 0;

  private constructor(
    /** Where masters are told to connect (the port: where we listen, unless given). */
    private readonly offered: { host: string; port?: number },
    private readonly dispatch: LinkDispatch,
    private readonly maxFrame: number,
    private readonly log: Logger,
    private readonly replyWritten: ReplyWritten,
  ) {
    // Plain TCP until a connection comes: TLS is taken up on it then (loadTls).
    this.server = net.createServer((socket) => void this.handshake(socket));
  }

  /**
   * Listens on `host`:`port` (0: a free port); offers `offered` (default: `host` and the port it
   * listens on). `dispatch` serves what links ask, as the bus's requests are.
   */
  static async listen(
    host: string, port: number, dispatch: LinkDispatch, maxFrame: number, log: Logger,
    offered: { host: string; port?: number } = { host }, replyWritten: ReplyWritten = () => undefined,
  ): Promise<Links> {
    const links = new Links(offered, dispatch, maxFrame, log, replyWritten);
    const server = links.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => log.warn({ err }, 'link listener failed'));
    const address = server.address();
    links.boundPort = typeof address === 'object' && address !== null ? address.port : port;
    log.info({ host, port: links.boundPort, offered: `${links.host}:${links.port}` }, 'links offered');
    return links;
  }

  /** The TLS handshake of a new connection: the client names its offer, and proves it holds the key. */
  private async handshake(raw: Socket): Promise<void> {
    if (this.handshakes >= MAX_HANDSHAKES) {
      raw.destroy();
      return;
    }
    this.handshakes++;
    // A reset while TLS is still being loaded must not be an unhandled error (TLS handles it after).
    raw.on('error', (err) => this.log.debug({ err }, 'link connection failed'));
    const timer = setTimeout(() => raw.destroy(), HANDSHAKE_MS);
    raw.once('close', () => clearTimeout(timer));
    let proved = false;
    try {
      const tls = await loadTls();
      this.context ??= tls.createSecureContext(LINK_TLS);
      // Node takes a server's pskCallback on a TLSSocket too; its types list it for createServer only.
      const options: TLSSocketOptions & { pskCallback(socket: TLSSocket, identity: string): Buffer | null } = {
        isServer: true, secureContext: this.context, ...LINK_TLS,
        // Only a key never used before is given, so each link is one stream's or one master's.
        pskCallback: (_socket, identity) => {
          const offer = this.offers.get(identity);
          if (!offer || offer.taken) return null;
          this.named.set(socket, identity);
          return offer.key;
        },
      };
      const socket: TLSSocket = new tls.TLSSocket(raw, options);
      socket.on('error', (err) => {
        if (!proved) this.log.debug({ err }, 'link handshake refused');
        socket.destroy();
      });
      await new Promise<void>((resolve) => {
        socket.once('secure', () => {
          proved = true;
          clearTimeout(timer);
          this.connected(socket);
          resolve();
        });
        socket.once('close', () => resolve());
      });
    } finally {
      this.handshakes--;
    }
  }

  /** The address masters are told. */
  get host(): string {
    return this.offered.host;
  }

  get port(): number {
    return this.offered.port ?? this.boundPort;
  }

  /** A new offer, withdrawn if nobody takes it within OFFER_MS. */
  private makeOffer(fh: number | undefined): [string, Offer] {
    const identity = randomBytes(16).toString('hex');
    const offer: Offer = { fh, key: randomBytes(LINK_KEY_BYTES), socket: undefined, taken: false, timer: undefined };
    offer.timer = setTimeout(() => {
      offer.timer = undefined;
      if (!offer.taken) this.offers.delete(identity);
    }, OFFER_MS);
    offer.timer.unref();
    this.offers.set(identity, offer);
    return [identity, offer];
  }

  /**
   * An offer of a session link: whoever holds it may send every request the bus takes (the
   * master that asked for it, over the bus that authenticated it). Its offer ends with its
   * connection.
   */
  offerSession(): LinkOffer | null {
    if (this.offers.size >= MAX_OFFERS) return null; // a master asking again and again: it stays on the bus
    const [identity, offer] = this.makeOffer(undefined);
    return { host: this.host, port: this.port, identity, key: offer.key };
  }

  /** An offer for the pushed device `fh`, whose events go to `fallback` while no link is up. */
  offer(fh: number, fallback: EventSink): OfferedLink {
    const [identity, offer] = this.makeOffer(fh);
    return {
      offer: { host: this.host, port: this.port, identity, key: offer.key },
      sink: (event) => {
        const socket = offer.socket;
        if (!socket || !socket.writable) {
          fallback(event);
          return;
        }
        agentMetrics.linkFrames.inc({ link: 'device' });
        writeFrame(socket, event, () => encodeLinkEvent(event), () => linkEventHeader(event.length));
      },
      close: () => {
        clearTimeout(offer.timer);
        this.offers.delete(identity);
        const socket = offer.socket;
        offer.socket = undefined;
        if (!socket) return;
        socket.end();
        // A link that went silent never finishes ending: cut off.
        setTimeout(() => socket.destroy(), 1000).unref();
      },
    };
  }

  private connected(socket: TLSSocket): void {
    const identity = this.named.get(socket);
    const offer = identity === undefined ? undefined : this.offers.get(identity);
    if (!offer || offer.taken) {
      socket.destroy();
      return;
    }
    offer.taken = true;
    offer.socket = socket;
    clearTimeout(offer.timer);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    if (offer.fh === undefined && identity !== undefined) {
      // Taken: nothing else may connect with it, and nothing needs it past its connection.
      this.offers.delete(identity);
      agentMetrics.links.inc({ link: 'session' });
      this.serveSession(socket, identity);
      return;
    }
    agentMetrics.links.inc({ link: 'device' });
    const log = this.log.child({ fh: offer.fh });
    log.debug('device link up');
    // Its own stream's ops on its own handle, nothing else: anything more closes it.
    this.serveRequests(socket, 'device', log, (op) => (LINK_OPS.has(op) ? undefined : 'device link asked for what is not its stream\'s: closed'),
      (op, args) => {
        if ((args as { fh?: unknown }).fh === offer.fh) return true;
        log.warn({ op }, 'device link asked for another stream\'s handle: closed');
        socket.destroy();
        return false;
      });
    socket.on('close', () => {
      if (offer.socket === socket) offer.socket = undefined;
      log.debug('device link down: the stream goes on over the bus');
    });
  }

  /** A session link: every request the bus takes, with no limit on what it may ask. */
  private serveSession(socket: TLSSocket, identity: string): void {
    this.sessions.set(identity, socket);
    const log = this.log.child({ link: 'session', peer: socket.remoteAddress });
    log.debug('session link up');
    this.serveRequests(socket, 'session', log);
    socket.on('close', () => {
      if (this.sessions.get(identity) === socket) this.sessions.delete(identity);
      log.debug('session link down: its master goes on over the bus');
    });
  }

  /**
   * Where events for the master holding session link `identity` go while it is up (a process's
   * output); undefined when no such link is up (the bus, as before). The identity travelled only
   * in the offer to that master, so no other master can have its output diverted.
   */
  routeTo(identity: string): LinkRoute | undefined {
    const socket = this.sessions.get(identity);
    if (socket === undefined) return undefined;
    return (subject, event) => {
      // A subject a frame cannot name (over 255 bytes: the bus allows 256) stays on the bus.
      if (!socket.writable || subject.length > 255) return false;
      agentMetrics.linkFrames.inc({ link: 'session' });
      writeFrame(socket, event, () => encodeLinkRouted(subject, event), () => linkRoutedHeader(subject, event.length));
      return true;
    };
  }

  /**
   * A link's requests, served as the bus's are: started in arrival order by the one dispatcher
   * (which runs each up to its first wait), each answered on the link. `refuse` names why an op
   * may not be asked here (the link is closed); `admit` sees a request's arguments once decoded.
   * A frame that is not a request, or not of our protocol, closes the link.
   */
  private serveRequests(
    socket: TLSSocket, link: 'device' | 'session', log: Logger,
    refuse?: (op: string) => string | undefined, admit?: (op: OpName, args: unknown) => boolean,
  ): void {
    const reader = new LinkFrameReader(this.maxFrame);
    socket.on('data', (chunk: Buffer) => {
      let messages;
      try {
        messages = reader.push(chunk);
      } catch (err) {
        log.warn({ err }, `${link} link spoke no protocol of ours: closed`);
        socket.destroy();
        return;
      }
      for (const message of messages) {
        if (socket.destroyed) return; // refused below: nothing after it is served
        if (message.kind !== LinkFrame.REQUEST) {
          log.warn({ kind: message.kind }, `${link} link sent a frame only the agent sends: closed`);
          socket.destroy();
          return;
        }
        const refused = refuse?.(message.op);
        if (refused !== undefined) {
          log.warn({ op: message.op }, refused);
          socket.destroy();
          return;
        }
        agentMetrics.linkFrames.inc({ link });
        const answer = this.dispatch(message.op, message.data, admit);
        if (message.callId !== 0) void answer.then((reply) => this.reply(socket, message.callId, reply, link));
      }
    });
    socket.on('error', (err) => log.debug({ err }, `${link} link failed`));
  }

  /** One reply down a link: a large one (a read's data) beside its header, not copied behind it. */
  private reply(socket: TLSSocket, callId: number, reply: Uint8Array, link: 'device' | 'session'): void {
    if (!socket.writable) {
      this.replyWritten(reply);
      return;
    }
    agentMetrics.linkFrames.inc({ link });
    // Its memory may be a pooled read buffer: used again once the socket has taken it.
    writeFrame(socket, reply, () => encodeLinkReply(callId, reply), () => linkReplyHeader(callId, reply.length), () => this.replyWritten(reply));
  }

  close(): void {
    for (const socket of this.sessions.values()) socket.destroy();
    this.sessions.clear();
    for (const offer of this.offers.values()) {
      clearTimeout(offer.timer);
      offer.socket?.destroy();
    }
    this.offers.clear();
    this.server.close();
  }
}
