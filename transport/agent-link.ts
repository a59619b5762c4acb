/**
 * The master's end of a link (protocol/link.ts): one TLS-PSK connection to the agent, carrying
 * requests and their replies (and, for a device link, the stream's events) instead of the bus.
 * It knows nothing of what it carries: mount/device-stream.ts decides what of a device stream goes
 * on its device link, transport/session-link.ts and agent-client.ts what of a client's requests
 * goes on its session link, and both go back to the bus when it closes.
 *
 *   DeviceStream --send/call--> AgentLink --TLS--> agent;  agent --events--> AgentLink --onEvent--> DeviceStream
 *   AgentClient --call--> AgentLink --TLS--> agent --reply--> AgentLink --> AgentClient
 *   agent --routed events (a process's output)--> AgentLink --onRouted--> AgentClient's subscribers
 */
import type { TLSSocket } from 'node:tls';
import { LINK_TLS, LinkFrame, LinkFrameReader, encodeLinkRequest, linkRequestHeader, type LinkOffer } from '../protocol/index.js';

/** Requests larger than this are written beside their frame's head rather than copied behind it (a file's data). */
const SMALL_REQUEST = 16 * 1024;

/** An event the agent sent down a session link in place of publishing it on `subject`. */
export type RoutedEvent = (subject: string, event: Uint8Array) => void;

/** A link that is gone: what was asked on it is asked again on the bus. */
export class LinkClosedError extends Error {
  override name = 'LinkClosedError';
}

export class AgentLink {
  private nextCall = 1;
  private readonly calls = new Map<number, { resolve(reply: Uint8Array): void; reject(err: Error): void }>();
  private closed = false;
  private onClosed: (() => void) | undefined;

  private constructor(
    private readonly socket: TLSSocket, onEvent: (event: Uint8Array) => void, maxFrame: number,
    /** The offer this link took: a session link's name in `proc.spawn`'s `linkOutput`. */
    readonly identity: string,
    onRouted: RoutedEvent | undefined,
  ) {
    const reader = new LinkFrameReader(maxFrame);
    socket.on('data', (chunk: Buffer) => {
      let messages;
      try {
        messages = reader.push(chunk);
      } catch {
        socket.destroy(); // not our protocol: the stream goes back to the bus
        return;
      }
      for (const message of messages) {
        if (message.kind === LinkFrame.EVENT) onEvent(message.data);
        else if (message.kind === LinkFrame.ROUTED && onRouted !== undefined) onRouted(message.subject, message.data);
        else if (message.kind === LinkFrame.REPLY) {
          const call = this.calls.get(message.callId);
          this.calls.delete(message.callId);
          call?.resolve(message.data);
        } else {
          socket.destroy(); // a request: only the agent is asked
          return;
        }
      }
    });
    socket.on('error', () => undefined); // 'close' follows, and says all the stream needs
    socket.on('close', () => this.gone());
  }

  /**
   * Connects to `offer`, within `timeoutMs` (a link the master cannot reach, behind a firewall
   * that drops packets, must not hold the stream up: it stays on the bus). `onRouted`: a session
   * link's events (without it, a routed event is not of this link's protocol: the link closes).
   */
  static async connect(
    offer: LinkOffer, onEvent: (event: Uint8Array) => void, maxFrame: number, timeoutMs: number, onRouted?: RoutedEvent,
  ): Promise<AgentLink> {
    // Loaded with the first link: a mount of files only never carries it.
    const tls = await import('node:tls');
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        ...LINK_TLS,
        host: offer.host,
        port: offer.port,
        // No certificate: the key proves the agent, as it proves us.
        checkServerIdentity: () => undefined,
        pskCallback: () => ({ psk: Buffer.from(offer.key), identity: offer.identity }),
      });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new LinkClosedError(`device link to ${offer.host}:${offer.port} not made within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 10_000);
        resolve(new AgentLink(socket, onEvent, maxFrame, offer.identity, onRouted));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      });
    });
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Called once, when the link closes (either end, or the network). */
  onClose(listener: () => void): void {
    if (this.closed) listener();
    else this.onClosed = listener;
  }

  /** Sends a request nobody waits for; false when the link is closed (send it on the bus). */
  send(op: string, request: Uint8Array): boolean {
    if (this.closed) return false;
    this.write(0, op, request);
    return true;
  }

  /** Sends a request and waits for its reply; LinkClosedError when the link goes first. */
  call(op: string, request: Uint8Array): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new LinkClosedError('device link closed'));
    const callId = this.nextCall;
    this.nextCall = this.nextCall >= 0xffff_fffe ? 1 : this.nextCall + 1;
    return new Promise((resolve, reject) => {
      this.calls.set(callId, { resolve, reject });
      this.write(callId, op, request);
    });
  }

  private write(callId: number, op: string, request: Uint8Array): void {
    if (request.length <= SMALL_REQUEST) {
      this.socket.write(encodeLinkRequest(callId, op, request));
      return;
    }
    this.socket.cork();
    this.socket.write(linkRequestHeader(callId, op, request.length));
    this.socket.write(request);
    this.socket.uncork();
  }

  /** Ends the link after what was written (bounded: a peer that does not end it too is cut off). */
  close(): void {
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.gone();
  }

  private gone(): void {
    if (this.closed) return;
    this.closed = true;
    for (const call of this.calls.values()) call.reject(new LinkClosedError('device link closed before the agent answered'));
    this.calls.clear();
    const listener = this.onClosed;
    this.onClosed = undefined;
    listener?.();
  }
}
