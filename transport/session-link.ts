/**
 * A client's session link (protocol/link.ts): one direct TLS connection to the agent that
 * carries every request the client would put on the bus, and its reply, in the order sent. A
 * request on the bus crosses the NATS server twice (client → server → agent, and back), and the
 * server handles every byte of a file's data twice; on the link it crosses one TCP connection
 * each way (docs/architecture.md, "Links").
 *
 * The bus stays: the offer comes over it (`agent.link`), and it carries everything while no link
 * is up, before one is made and after one breaks. Order is kept across the moves:
 *
 * - bus → link: only once nothing sent on the bus waits for its reply (`carrier(quiet)`); the
 *   agent has then started everything sent before, and what goes on the link comes after it.
 * - link → bus: when the link closes, or is given up as silent (the client's probe finds the
 *   agent with nothing in hand while a request waits on it, or a request outlives its deadline),
 *   everything still waiting on it is sent again on the bus at once, in the order it was sent,
 *   before anything new (`AgentClient`); the agent answers a repeat of a request it has run from
 *   its duplicate request cache, as for any retry.
 *
 * After a break it asks for a new link after a pause that doubles up to a minute; a restarted
 * agent is asked at once.
 */
import type { Logger } from 'pino';
import { linkHost, type LinkOffer } from '../protocol/index.js';
import { AgentLink, type RoutedEvent } from './agent-link.js';

/** How long a connection to an offer may take before the client stays on the bus. */
const CONNECT_MS = 3000;
/** Pauses before asking again after a link broke or could not be made. */
const FIRST_PAUSE_MS = 1000;
const MAX_PAUSE_MS = 60_000;

export class SessionLink {
  /** The link requests go on (once the bus was quiet). */
  private link: AgentLink | undefined;
  /** Made, not yet carrying: requests sent on the bus still wait for replies. */
  private ready: AgentLink | undefined;
  private asking = false;
  private closed = false;
  private pause = FIRST_PAUSE_MS;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    /** Asks the agent for an offer (over the bus); null: it offers none. */
    private readonly ask: () => Promise<LinkOffer | null>,
    /** The NATS server the client reached (`host:port`): an offer of loopback is taken as its host. */
    private readonly busServer: () => string,
    private readonly maxFrame: number,
    private readonly log: Logger,
    /** What the agent sends down the link in place of the bus (the output of processes started asking for it). */
    private readonly onRouted: RoutedEvent,
  ) {}

  /** Asks for a link and connects it, in the background; the client works on the bus meanwhile. */
  start(): void {
    if (this.closed || this.asking || this.link !== undefined || this.ready !== undefined) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.asking = true;
    void this.connect().finally(() => { this.asking = false; });
  }

  private async connect(): Promise<void> {
    let offer: LinkOffer | null;
    try {
      offer = await this.ask();
    } catch (err) {
      this.log.debug({ err }, 'no session link offered now: asking again later');
      this.later();
      return;
    }
    if (offer === null) {
      this.log.debug('the agent offers no session link: requests stay on the bus');
      return;
    }
    const host = linkHost(offer.host, this.busServer());
    let link: AgentLink;
    try {
      link = await AgentLink.connect({ ...offer, host }, () => undefined, this.maxFrame, CONNECT_MS, this.onRouted);
    } catch (err) {
      this.log.info({ err, host, port: offer.port }, 'session link not made: requests stay on the bus');
      this.later();
      return;
    }
    if (this.closed) {
      link.close();
      return;
    }
    this.pause = FIRST_PAUSE_MS;
    this.ready = link;
    link.onClose(() => this.lost(link));
    this.log.debug({ host, port: offer.port }, 'session link up');
  }

  /** Asks again after a pause (doubled each time up to MAX_PAUSE_MS). */
  private later(): void {
    if (this.closed || this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.start();
    }, this.pause);
    this.retryTimer.unref();
    this.pause = Math.min(this.pause * 2, MAX_PAUSE_MS);
  }

  private lost(link: AgentLink): void {
    if (this.link === link) this.link = undefined;
    if (this.ready === link) this.ready = undefined;
    if (this.closed) return;
    this.log.info('session link lost: requests go on over the bus');
    this.later();
  }

  /**
   * The link to send a request on now, if one is up. `quiet`: nothing sent on the bus waits for
   * its reply, so a link made meanwhile may take over.
   */
  carrier(quiet: boolean): AgentLink | undefined {
    if (this.link === undefined && quiet && this.ready !== undefined) {
      this.link = this.ready;
      this.ready = undefined;
    }
    return this.link?.isOpen === true ? this.link : undefined;
  }

  /** Gives up the link (gone silent, or the agent restarted): what waits on it goes on the bus. */
  drop(): void {
    this.link?.close();
    this.ready?.close();
  }

  /** The agent restarted: its links went with it; a new one is asked for now. */
  restarted(): void {
    this.drop();
    this.pause = FIRST_PAUSE_MS;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    queueMicrotask(() => this.start());
  }

  /**
   * The identity of the link made now (carrying or about to): a process started with it as its
   * `linkOutput` gets its output down that link while it is up. Undefined while none is.
   */
  get identity(): string | undefined {
    const link = this.link?.isOpen === true ? this.link : this.ready;
    return link?.isOpen === true ? link.identity : undefined;
  }

  get up(): boolean {
    return this.link?.isOpen === true;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.drop();
  }
}
