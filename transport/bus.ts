/**
 * The NATS adapter: the only file that imports `nats`. Everything above it sees a `Bus`:
 * request with a deadline, a scatter request for discovery, and a subscription that answers.
 */
import {
  connect, createInbox, ErrorCode, RequestStrategy,
  type Msg, type NatsConnection, type NatsError, type Subscription,
} from 'nats';
import type { Logger } from 'pino';
import { busAuthFromEnv, natsAuthOptions, type BusAuth } from './bus-auth.js';
import { sawMessage } from './bulk-memory.js';
import { AgentUnreachableError, BusConnectError, BusPermissionError } from './errors.js';
import { busMetrics } from './metrics.js';

export interface BusOptions {
  /** nats://host:port, or several separated by commas. */
  url: string;
  /** Connection name shown by the server's monitoring. */
  name: string;
  log: Logger;
  /** How long the first connection may take. */
  connectTimeoutMs?: number;
  /** Credentials and TLS (default: from the environment, see bus-auth.ts). */
  auth?: BusAuth;
}

/** Answers one message; the reply bytes are sent back to the requester. */
export type ServeHandler = (subject: string, data: Uint8Array) => Promise<Uint8Array>;

export interface Bus {
  /** The server's max_payload: no message we send may be larger. */
  readonly maxPayload: number;
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /** Sends one request and collects every reply that arrives within `waitMs`. */
  requestAll(subject: string, data: Uint8Array, waitMs: number): Promise<Uint8Array[]>;
  /**
   * Serves `subject`; rejects if the server refuses the subscription (BusPermissionError).
   * `sent` is told of every reply once it is handed to the connection (see flushed).
   */
  serve(subject: string, handler: ServeHandler, sent?: (reply: Uint8Array) => void): Promise<{ stop(): void }>;
  /**
   * Resolves once the server has everything published before the call (it answered a PING
   * sent after it): the connection has written those messages, and their memory may be used
   * again. Rejects when the connection is lost first.
   */
  flushed(): Promise<void>;
  /** Sends one message nobody answers (process output: see protocol ProcEvent). */
  publish(subject: string, data: Uint8Array): void;
  /** Receives the messages sent to `subject`, in the order they were published. */
  subscribe(subject: string, handler: (data: Uint8Array) => void): Promise<{ stop(): void }>;
  /** False while the connection to the NATS server is down (nats.js keeps reconnecting). */
  readonly connected: boolean;
  /** Calls `listener` after every reconnection. */
  onReconnect(listener: () => void): void;
  /** The server connected to now: its name as it reports it, and the address it was reached at. */
  readonly server: { name: string; url: string };
  /** How many times the connection was made again since the first. */
  readonly reconnects: number;
  /** The address the server sees this connection come from, if it said (agent/links.ts listens there). */
  readonly clientIp: string | undefined;
  close(): Promise<void>;
}

/** A request waiting for its reply on our inbox. */
interface Pending {
  resolve(data: Uint8Array): void;
  reject(err: Error): void;
  subject: string;
  timeoutMs: number;
  deadline: number;
}

/** How often deadlines are checked while requests are waiting: their precision. */
const SWEEP_MS = 50;
/** How long a new subscription waits to learn whether the server refused it (checkSubscribed). */
const SUBSCRIBE_CHECK_MS = 5000;
/** NATS answers a request nobody is subscribed to with an empty 503 status message. */
const NO_RESPONDERS = 503;

class NatsBus implements Bus {
  /**
   * Replies come to `<inbox>.<token>` on one subscription. nats.js's own request() costs three
   * Error objects (stack traces included), a timer and a Promise.race per request: a fifth of
   * the mount's CPU in an untar of small files. Here a request is a map entry, and one interval
   * checks the deadlines while any request waits.
   */
  private readonly inbox: string;
  /** Made at the first request: an agent never asks, and may not be allowed an inbox at all. */
  private replies: Subscription | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextToken = 0;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;
  private down = false;
  private readonly reconnectListeners: (() => void)[] = [];
  /** Subjects the server refused us to publish on lately (requestAll's replies never come). */
  private readonly refused = new Set<string>();

  /**
   * `inboxPrefix` is where replies come: a server that grants each user only its own prefix
   * (`_INBOX_<user>`) keeps other users from reading them (compose/nats/permissions.conf).
   */
  constructor(private readonly nc: NatsConnection, private readonly log: Logger, inboxPrefix?: string) {
    this.inbox = createInbox(inboxPrefix);
    void nc.closed().then(() => {
      this.closed = true;
      this.failAll('closed', 'bus connection is closed');
    });
  }

  private reconnectCount = 0;

  get connected(): boolean {
    return !this.down && !this.closed;
  }

  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  /**
   * The connection dropped: what waits for a reply fails now (the caller retries once the bus
   * is back, with the same request ids) instead of waiting out its deadline, and new requests
   * fail at once until the reconnection.
   */
  markDown(): void {
    this.down = true;
    this.failAll('disconnected', 'the connection to the NATS server is down');
  }

  markUp(): void {
    this.down = false;
    this.reconnectCount++;
    for (const listener of this.reconnectListeners) listener();
  }

  get reconnects(): number {
    return this.reconnectCount;
  }

  get server(): { name: string; url: string } {
    const info = this.nc.info;
    return { name: info?.server_name ?? info?.server_id ?? '', url: this.nc.getServer() };
  }

  /** The address the server sees this connection come from (its INFO's client_ip), if it said. */
  get clientIp(): string | undefined {
    return this.nc.info?.client_ip || undefined;
  }

  get maxPayload(): number {
    return this.nc.info?.max_payload ?? 1024 * 1024;
  }

  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.closed) {
      return Promise.reject(new AgentUnreachableError('closed', `bus connection is closed (${subject})`));
    }
    if (this.down) {
      return Promise.reject(new AgentUnreachableError('disconnected', `the connection to the NATS server is down (${subject})`));
    }
    this.replies ??= this.nc.subscribe(`${this.inbox}.*`, { callback: (err, msg) => this.onReply(err, msg) });
    const token = ++this.nextToken;
    sawMessage(data.length, this.log);
    return new Promise((resolve, reject) => {
      this.pending.set(token, { resolve, reject, subject, timeoutMs, deadline: Date.now() + timeoutMs });
      this.sweeper ??= setInterval(() => this.sweep(), SWEEP_MS);
      try {
        // While the connection is down nats.js buffers this until it reconnects.
        this.nc.publish(subject, data, { reply: `${this.inbox}.${token}` });
      } catch (cause) {
        this.pending.delete(token);
        reject(translate(cause, subject, timeoutMs));
      }
    });
  }

  private onReply(err: NatsError | null, msg: Msg): void {
    if (err) {
      logSubscriptionError(this.log, err, `${this.inbox}.*`);
      this.replies = undefined; // the next request subscribes again
      if (err.code === ErrorCode.PermissionsViolation) {
        this.failAllWith(() => new BusPermissionError('subscription', `${this.inbox}.*`));
      } else {
        this.failAll('disconnected', `reply subscription failed: ${err.message}`);
      }
      return;
    }
    const token = Number(msg.subject.slice(this.inbox.length + 1));
    sawMessage(msg.data.length, this.log);
    const request = this.pending.get(token);
    if (!request) return; // late: its deadline passed
    this.pending.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === NO_RESPONDERS) {
      request.reject(new AgentUnreachableError('no-responders', `no agent is listening on ${request.subject}`));
    } else {
      request.resolve(msg.data);
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const [token, request] of this.pending) {
      if (request.deadline > now) continue;
      this.pending.delete(token);
      request.reject(new AgentUnreachableError('timeout',
        `no reply on ${request.subject} within ${request.timeoutMs} ms`));
    }
    if (this.pending.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private failAll(reason: 'disconnected' | 'closed', message: string): void {
    this.failAllWith((request) => new AgentUnreachableError(reason, `${message} (${request.subject})`));
  }

  private failAllWith(error: (request: Pending) => Error): void {
    for (const request of this.pending.values()) request.reject(error(request));
    this.pending.clear();
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /**
   * The server refused a publish (it says so asynchronously, naming the subject): the requests
   * sent there fail now with a permission error, rather than wait for their deadline and retry.
   */
  publishRefused(subject: string): void {
    this.refused.add(subject);
    setTimeout(() => this.refused.delete(subject), 10_000).unref();
    for (const [token, request] of this.pending) {
      if (request.subject !== subject) continue;
      this.pending.delete(token);
      request.reject(new BusPermissionError('publish', subject));
    }
  }

  async requestAll(subject: string, data: Uint8Array, waitMs: number): Promise<Uint8Array[]> {
    const replies: Uint8Array[] = [];
    try {
      const iter = await this.nc.requestMany(subject, data, {
        strategy: RequestStrategy.Timer, maxWait: waitMs,
      });
      for await (const msg of iter) replies.push(msg.data);
    } catch (cause) {
      // No responders just means nobody is there to answer.
      if ((cause as NatsError).code !== ErrorCode.NoResponders) throw translate(cause, subject, waitMs);
    }
    if (this.refused.has(subject)) throw new BusPermissionError('publish', subject);
    return replies;
  }

  async serve(subject: string, handler: ServeHandler, sent?: (reply: Uint8Array) => void): Promise<{ stop(): void }> {
    let failed: NatsError | undefined;
    const sub: Subscription = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) {
          failed = err;
          logSubscriptionError(this.log, err, subject);
          return;
        }
        sawMessage(msg.data.length, this.log);
        // Not awaited: requests are served concurrently, a slow one never blocks the next.
        handler(msg.subject, msg.data).then(
          (reply) => {
            sawMessage(reply.length, this.log);
            // A reply the bus refuses (larger than max_payload, or the connection just closed)
            // is lost, and the requester's retry or deadline takes over; it must not throw out of
            // here, where nothing would catch it and Node would end the process.
            try {
              if (msg.reply) msg.respond(reply);
            } catch (err) {
              this.log.error({ err, subject: msg.subject, bytes: reply.length }, 'reply not sent');
            } finally {
              sent?.(reply);
            }
          },
          (error: unknown) => this.log.error({ err: error, subject: msg.subject }, 'handler failed'),
        );
      },
    });
    await this.checkSubscribed(subject, () => failed);
    return { stop: () => sub.unsubscribe() };
  }

  publish(subject: string, data: Uint8Array): void {
    sawMessage(data.length, this.log);
    this.nc.publish(subject, data);
  }

  flushed(): Promise<void> {
    return this.nc.flush();
  }

  async subscribe(subject: string, handler: (data: Uint8Array) => void): Promise<{ stop(): void }> {
    let failed: NatsError | undefined;
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) {
          failed = err;
          logSubscriptionError(this.log, err, subject);
        } else {
          sawMessage(msg.data.length, this.log);
          handler(msg.data);
        }
      },
    });
    await this.checkSubscribed(subject, () => failed);
    return { stop: () => sub.unsubscribe() };
  }

  /**
   * A server refuses a subscription asynchronously, but before it answers a later PING: after a
   * flush we know whether this one stands (an agent started with another agent's credentials,
   * a master not granted a slave's output, must fail now, not wait for messages that never come).
   */
  private async checkSubscribed(subject: string, failed: () => NatsError | undefined): Promise<void> {
    // While the connection is down there is no verdict to wait for: go on without it (a refusal
    // that comes later is logged), as when the server is slow to answer, and let the caller's own
    // retries and --slave-wait deal with the outage.
    // A flush the connection's loss rejects says nothing either.
    if (!this.connected) return;
    let timer: NodeJS.Timeout | undefined;
    const answered = await Promise.race([
      this.nc.flush().then(() => true, () => false),
      new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), SUBSCRIBE_CHECK_MS); }),
    ]).finally(() => clearTimeout(timer));
    if (!answered) {
      this.log.debug({ subject }, 'no answer to the subscription check: going on without it');
      return;
    }
    const err = failed();
    if (err?.code === ErrorCode.PermissionsViolation) throw new BusPermissionError('subscription', subject);
    if (err) throw err;
  }

  async close(): Promise<void> {
    // What still waits, and whatever is asked from now on, fails at once: nobody will answer.
    this.closed = true;
    this.failAll('closed', 'bus connection is closed');
    if (this.nc.isClosed()) return;
    await this.nc.drain().catch(() => this.nc.close());
  }
}

/** A refused subscription reaches its caller as an error (checkSubscribed); others are news. */
function logSubscriptionError(log: Logger, err: NatsError, subject: string): void {
  if (err.code === ErrorCode.PermissionsViolation) log.debug({ subject }, 'subscription refused');
  else log.error({ err, subject }, 'subscription failed');
}

function translate(cause: unknown, subject: string, timeoutMs: number): Error {
  const code = (cause as NatsError | undefined)?.code;
  if (code === ErrorCode.Timeout) {
    return new AgentUnreachableError('timeout', `no reply on ${subject} within ${timeoutMs} ms`, { cause });
  }
  if (code === ErrorCode.NoResponders) {
    return new AgentUnreachableError('no-responders', `no agent is listening on ${subject}`, { cause });
  }
  if (code === ErrorCode.PermissionsViolation) {
    const refused = (cause as NatsError).permissionContext;
    return new BusPermissionError(refused?.operation === 'subscription' ? 'subscription' : 'publish', refused?.subject ?? subject);
  }
  if (code === ErrorCode.ConnectionClosed || code === ErrorCode.ConnectionDraining) {
    return new AgentUnreachableError('closed', `bus connection is closed (${code})`, { cause });
  }
  if (code === ErrorCode.Disconnect) {
    return new AgentUnreachableError('disconnected', `bus connection is down (${code})`, { cause });
  }
  return cause instanceof Error ? cause : new Error(String(cause));
}

export async function connectBus(options: BusOptions): Promise<Bus> {
  const log = options.log;
  const auth = options.auth ?? busAuthFromEnv();
  let nc: NatsConnection;
  try {
    nc = await connect({
      ...natsAuthOptions(auth),
      servers: options.url.split(',').map((s) => s.trim()),
      name: options.name,
      timeout: options.connectTimeoutMs ?? 5000,
      // Keep trying for ever once connected: the bus or the slave may come back.
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      pingInterval: 10_000,
      // Stack traces for every request's possible error cost more than the request itself.
      noAsyncTraces: true,
    });
  } catch (cause) {
    throw new BusConnectError(`cannot connect to ${options.url}: ${explainConnectError(cause)}`, { cause });
  }
  const bus = new NatsBus(nc, log, auth.inboxPrefix);
  void (async () => {
    for await (const status of nc.status()) {
      // A refusal reaches the request it failed as an error: logging it louder would say it twice.
      const level = status.type === 'reconnect' || status.type === 'update' || status.permissionContext ? 'info' : 'warn';
      if (status.type === 'pingTimer') continue;
      log[level]({ event: status.type, data: status.data, refused: status.permissionContext }, 'bus status');
      if (status.permissionContext?.operation === 'publish') bus.publishRefused(status.permissionContext.subject);
      if (status.type === 'disconnect') {
        busMetrics.disconnects.inc();
        bus.markDown();
      }
      if (status.type === 'reconnect') {
        busMetrics.reconnects.inc();
        bus.markUp();
      }
    }
  })();
  log.debug({ url: options.url, maxPayload: nc.info?.max_payload }, 'bus connected');
  return bus;
}

/** What went wrong at connect, in the words a user can act on. */
function explainConnectError(cause: unknown): string {
  const err = cause as NatsError & { code?: string };
  if (err.code === ErrorCode.AuthorizationViolation || /authorization violation/i.test(err.message ?? '')) {
    return 'the NATS server refused our credentials (authorization violation): give --creds, --user/--password or --token';
  }
  if (/certificate|self.signed|altnames/i.test(err.message ?? '')) {
    return `TLS: the NATS server's certificate is not trusted (${err.message}): give its CA with --tls-ca`;
  }
  if (/tls/i.test(err.message ?? '') || /tls/i.test(String(err.code ?? ''))) {
    return `TLS: ${err.message} (the server may require TLS: give --tls-ca, and --tls-cert/--tls-key if it verifies clients)`;
  }
  return err.message ?? String(cause);
}
