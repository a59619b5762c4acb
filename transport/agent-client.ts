/**
 * The master's typed view of one agent: `call('fs.read', {...})` encodes with the protocol,
 * sends with a deadline, validates the reply and notices a restarted agent by its boot id.
 *
 * It outlives the agent and the bus. A request that gets no answer (the agent is gone, NATS is
 * down, a reply was lost) is sent again, with the same id, until the agent answers or
 * `slaveWaitMs` has passed since the operation started; then it fails with EIO, and the next
 * operation tries again. Only an agent that has answered once is waited for. The agent answers
 * a retry of a request it has run from its duplicate request cache; a request whose first try
 * reached an agent that has since restarted cannot be known to have run, and is taken as done
 * when the second answer says it was (see `settled`).
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import type { Logger } from 'pino';
import {
  DISCOVER_SUBJECT, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, ProtocolError, decodeReply, encodeRequest, opSubject,
  type Caller, type HelloInfo, type OpName, type OpReply, type OpRequest,
} from '../protocol/index.js';
import type { Bus } from './bus.js';
import { LinkClosedError } from './agent-link.js';
import { AgentUnreachableError } from './errors.js';
import { clientMetrics } from './metrics.js';
import { RequestBatch } from './request-batch.js';
import { SessionLink } from './session-link.js';

export interface AgentClientOptions {
  /** Deadline of one try of a request. */
  timeoutMs: number;
  /** How long an operation waits for an unreachable agent before it fails with EIO (0: not at all). */
  slaveWaitMs?: number;
  log: Logger;
}

export interface CallOptions {
  /** Deadline of one try (default: the client's). */
  timeoutMs?: number;
  /** The agent boot the request's handle came from: a restarted agent answers ESTALE. */
  handleBoot?: string;
  /** Overrides the client's slaveWaitMs for this call (0: one try). */
  slaveWaitMs?: number;
  /** Who the operation is for: a root agent acts as this caller (protocol/caller.ts). */
  caller?: Caller;
  /**
   * Nobody waits for the reply yet: the request may be held a moment to travel with others in
   * one message (request-batch.ts). Whoever then waits for it calls `uncork()` first.
   */
  hold?: boolean;
}

/** A try waiting for its reply, which agentLost can give up on. */
interface WaitingTry {
  sentAt: number;
  giveUp(): void;
}

/** A request waiting longer than this has the agent probed (see watch). */
const PROBE_AFTER_MS = 1000;

/** Pause between tries while the agent cannot be reached. */
const RETRY_PAUSE_MS = 200;
export const DEFAULT_SLAVE_WAIT_MS = 60_000;
const { O_CREAT, O_EXCL, O_TRUNC } = constants;

/**
 * Whether a retried request that reached a restarted agent got the answer its first try would
 * cause had it run before the restart (as NFS clients judge a retry whose server rebooted):
 * then the first try did the work. Ops whose reply carries attributes are asked again with
 * fs.getattr.
 */
function settled(op: OpName, errno: string, args: unknown): boolean {
  switch (op) {
    case 'fs.unlink': case 'fs.rmdir': return errno === 'ENOENT';
    case 'fs.mkdir': case 'fs.symlink': case 'fs.link': case 'fs.mknod': return errno === 'EEXIST';
    // Only an exclusive create can fail so because of its own first try.
    case 'fs.create': return errno === 'EEXIST' && ((args as OpRequest<'fs.create'>).flags & O_EXCL) !== 0;
    default: return false;
  }
}

export class AgentClient {
  private seq = 0;
  private readonly clientId = randomBytes(6).toString('hex');
  private lastBoot: string | undefined;
  private readonly bootListeners: ((boot: string) => void)[] = [];
  /** The tries waiting for their replies (see watch and agentLost). */
  private readonly waiting = new Set<WaitingTry>();
  private watchdog: NodeJS.Timeout | undefined;
  private probing = false;
  /**
   * The protocol the agent speaks: ours until its hello says it is older (or it refuses ours).
   * Hellos go in the oldest version, which every agent answers (protocol/wire-forms.ts).
   */
  private version = PROTOCOL_VERSION;
  /** How often the agent had reconnected to the bus, as its last hello said. */
  private agentReconnects: number | undefined;
  /** Requests held to travel together, once the agent's hello says it takes batches. */
  private readonly batch: RequestBatch;
  private batching = false;
  /** The direct connection requests go on when it is up (useLink); else the bus. */
  private session: SessionLink | undefined;
  /** Requests sent on the bus and not yet answered: a session link takes over only when none are. */
  private onBus = 0;
  /** Who takes what the agent routes down the session link in place of a subject of the bus. */
  private readonly routed = new Map<string, (event: Uint8Array) => void>();

  constructor(
    readonly bus: Bus,
    readonly agentId: string,
    private readonly options: AgentClientOptions,
  ) {
    this.batch = new RequestBatch((op, message, timeoutMs) => this.carry(op, message, timeoutMs), this.clientId,
      Math.min(Math.floor(bus.maxPayload / 2), 512 * 1024));
  }

  /**
   * Sends this client's requests on a session link once the agent offers one and it is made
   * (transport/session-link.ts), the bus meanwhile and whenever it is down. For clients whose
   * requests carry bulk data or wait one after another (a mount).
   */
  useLink(): void {
    if (this.session) return;
    this.session = new SessionLink(
      async () => (await this.call('agent.link', {}, { slaveWaitMs: 0 })).link,
      () => this.bus.server.url,
      this.bus.maxPayload + 1024,
      this.options.log.child({ component: 'session-link' }),
      (subject, event) => this.routed.get(subject)?.(event),
    );
    this.onRestart(() => this.session?.restarted());
    this.session.start();
  }

  /**
   * The session link's identity while one is made (useLink): a `proc.spawn` naming it as its
   * `linkOutput` gets the process's output down that link. Undefined while none is.
   */
  get linkIdentity(): string | undefined {
    return this.session?.identity;
  }

  /**
   * Takes what the agent sends down the session link in place of publishing it on `subject`, as
   * a subscription to `subject` on the bus would (both may come: the caller's events say which
   * it has had). Returns the end of it.
   */
  onRouted(subject: string, receive: (event: Uint8Array) => void): () => void {
    this.routed.set(subject, receive);
    return () => {
      if (this.routed.get(subject) === receive) this.routed.delete(subject);
    };
  }

  /** Stops using the session link (the bus stays the caller's to close). */
  close(): void {
    this.session?.close();
  }

  /**
   * One request to the agent, on the session link when one carries them, else on the bus; its
   * raw reply. A request waiting on a link that closes, or that outlives `timeoutMs` there (the
   * link went silent: it is given up with all it carries), fails with 'link-lost', which tryCall
   * asks again at once: every request waiting on the link is rejected in the order sent, before
   * anything newer can be sent, so they reach the bus in that order.
   */
  private carry(op: OpName, message: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const link = this.session?.carrier(this.onBus === 0);
    if (link === undefined) return this.onTheBus(op, message, timeoutMs);
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.options.log.info({ op, timeoutMs }, 'no answer on the session link: it is given up, requests go on over the bus');
        this.session?.drop();
      }, timeoutMs);
      link.call(op, message).then((reply) => {
        clearTimeout(timer);
        resolve(reply);
      }, (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof LinkClosedError ? new AgentUnreachableError('link-lost', err.message, { cause: err }) : err);
      });
    });
  }

  private onTheBus(op: OpName, message: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    this.onBus++;
    const reply = this.bus.request(opSubject(this.agentId, op), message, timeoutMs);
    const done = (): void => { this.onBus--; };
    reply.then(done, done);
    return reply;
  }

  /** Sends the requests held to travel together now: somebody waits for one of them. */
  uncork(): void {
    this.batch.uncork();
  }

  /** Sends the requests held, and those that join them this turn, at the end of this turn. */
  sendSoon(): void {
    this.batch.soon();
  }

  /**
   * A killed agent answers nothing, and a NATS server tells nobody that its subscriber is gone:
   * requests already sent would wait out their deadlines. So while a request has waited more
   * than PROBE_AFTER_MS, the agent is asked for its hello once a second: nobody listening, or
   * another boot id, means the waiting requests are lost (agentLost); the same boot means the
   * agent is only slow, and they keep waiting.
   */
  private watch(): void {
    if (this.watchdog) return;
    this.watchdog = setInterval(() => {
      if (this.waiting.size === 0) {
        clearInterval(this.watchdog);
        this.watchdog = undefined;
        return;
      }
      let oldest = Infinity;
      for (const waiting of this.waiting) oldest = Math.min(oldest, waiting.sentAt);
      if (this.probing || Date.now() - oldest < PROBE_AFTER_MS) return;
      this.probing = true;
      const boot = this.lastBoot;
      const probedAt = Date.now();
      this.bus.request(opSubject(this.agentId, 'agent.hello'), helloRequest(`${this.clientId}:probe`), PROBE_AFTER_MS)
        .then((raw) => {
          try {
            const reply = decodeReply('agent.hello', raw);
            if (reply.boot !== boot) this.noteBoot(reply.boot);
            else if (reply.ok && this.noteReconnects(reply.result.reconnects)) {
              this.options.log.info({ agentId: this.agentId, server: reply.result.server }, 'the agent moved to another server');
              this.agentMoved();
            } else if (reply.ok && reply.result.busy === 0 && this.session?.up === true) {
              // Nothing in hand, yet we waited over a second on the session link: it went
              // silent (a firewall dropped it). Given up: what waits on it goes on the bus.
              this.options.log.info({ agentId: this.agentId, waiting: this.waiting.size }, 'the agent has nothing in hand: the session link is given up');
              this.session.drop();
            } else if (reply.ok && reply.result.busy === 0) {
              // It serves nothing, yet we waited over a second: the requests or their replies
              // were lost on the way (a link between servers went), so they are sent again.
              this.options.log.info({ agentId: this.agentId, waiting: this.waiting.size }, 'the agent has nothing in hand: asking again');
              this.agentLost(probedAt - PROBE_AFTER_MS); // those sent just now may be on their way
            }
          } catch (err) {
            this.options.log.warn({ err }, 'undecodable probe reply');
          }
        }, (err: unknown) => {
          if (err instanceof AgentUnreachableError && err.reason === 'no-responders') this.agentLost();
        })
        .finally(() => { this.probing = false; });
    }, PROBE_AFTER_MS);
    this.watchdog.unref();
  }

  /**
   * The agent is gone (nobody listens on its subjects) or has restarted: no reply will come to
   * what was sent to it before, so those requests are tried again now rather than at their
   * deadlines (the retry has the same id; a restarted agent answers handle requests ESTALE).
   */
  private agentLost(sentBefore = Infinity): void {
    for (const waiting of [...this.waiting]) {
      if (waiting.sentAt >= sentBefore) continue;
      this.waiting.delete(waiting);
      waiting.giveUp();
    }
  }

  /**
   * The same agent, on another connection to the bus: what it answered on the old one may be
   * lost, so what waits is sent again (it answers a repeat from its replay cache). Not while a
   * session link carries the requests: the agent's bus connection is not theirs, and sending
   * again what is on its way could apply a write after what followed it.
   */
  private agentMoved(): void {
    if (this.session?.up === true) return;
    this.options.log.info({ agentId: this.agentId, waiting: this.waiting.size }, 'asking again what waits');
    this.agentLost();
  }

  /** Notes the agent's reconnection count from a hello; true when it moved since the last one. */
  private noteReconnects(reconnects: number | undefined): boolean {
    if (reconnects === undefined) return false;
    const moved = this.agentReconnects !== undefined && reconnects !== this.agentReconnects;
    this.agentReconnects = reconnects;
    return moved;
  }

  /** Calls `listener` with the new boot id whenever the agent is seen to have restarted. */
  onRestart(listener: (boot: string) => void): void {
    this.bootListeners.push(listener);
  }

  /** This client's id, the first part of its request ids: the origin of the changes it makes (protocol/changes.ts). */
  get origin(): string {
    return this.clientId;
  }

  /** How long an operation waits for an unreachable agent before it fails (--slave-wait). */
  get slaveWaitMs(): number {
    return this.options.slaveWaitMs ?? DEFAULT_SLAVE_WAIT_MS;
  }

  /** The boot id of the agent as of the last reply. */
  get bootId(): string | undefined {
    return this.lastBoot;
  }

  async call<K extends OpName>(op: K, args: OpRequest<K>, options: CallOptions = {}): Promise<OpReply<K>> {
    const started = process.hrtime.bigint();
    clientMetrics.inFlight.inc();
    let result = 'OK';
    try {
      return await this.tryCall(op, args, options);
    } catch (err) {
      result = err instanceof AgentUnreachableError ? 'unreachable' : (err as { errnoName?: string }).errnoName ?? 'error';
      throw err;
    } finally {
      const micros = Number(process.hrtime.bigint() - started) / 1000;
      clientMetrics.inFlight.dec();
      clientMetrics.requests.inc({ op, result });
      clientMetrics.latency.observe({ op }, micros / 1e6);
      // One line per request, as the agent logs one per op: the two sides can be lined up.
      if (this.options.log.isLevelEnabled('debug')) {
        const path = (args as { path?: unknown }).path;
        this.options.log.debug({ agentId: this.agentId, op, ...(typeof path === 'string' ? { path } : {}), result, micros: Math.round(micros) }, 'request');
      }
    }
  }

  /**
   * Publishes a request without asking for an answer or waiting: for ops whose effect the agent
   * reports otherwise (dev.input, acknowledged in the device's events; dev.credit). What the bus
   * cannot take now (closed) is dropped, and the stream's own resending takes over.
   */
  send<K extends OpName>(op: K, args: OpRequest<K>, options: Pick<CallOptions, 'handleBoot'> = {}): void {
    this.batch.uncork(); // after what was sent before it
    try {
      const message = this.encode(op, args, options);
      // With what was sent before it: on the session link when that carries requests.
      if (this.session?.carrier(false)?.send(op, message) === true) {
        clientMetrics.requests.inc({ op, result: 'sent' });
        return;
      }
      this.bus.publish(opSubject(this.agentId, op), message);
      clientMetrics.requests.inc({ op, result: 'sent' });
    } catch (err) {
      clientMetrics.requests.inc({ op, result: 'unsent' });
      this.options.log.debug({ err, op }, 'request not sent');
    }
  }

  /**
   * A request as `send` would publish it, for another carrier of the same messages (a device
   * link: transport/agent-link.ts); `answer` reads what comes back for it.
   */
  encode<K extends OpName>(op: K, args: OpRequest<K>, options: Pick<CallOptions, 'handleBoot'> = {}): Uint8Array {
    return encodeRequest(op, `${this.clientId}:${++this.seq}`, args, options.handleBoot, undefined, this.version);
  }

  /** The result in a reply to an `encode`d request; throws the agent's refusal (a SlaveError) or a ProtocolError. */
  answer<K extends OpName>(op: K, raw: Uint8Array): OpReply<K> {
    const reply = decodeReply(op, raw);
    if (!reply.ok) throw reply.error;
    return reply.result;
  }

  private async tryCall<K extends OpName>(op: K, args: OpRequest<K>, options: CallOptions): Promise<OpReply<K>> {
    // Ids are unique per client, so the agent can recognise a retried request.
    const id = `${this.clientId}:${++this.seq}`;
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs;
    // Only an agent that has answered before is waited for: one never reached fails at once,
    // as ssh does for a host it cannot reach (a typo'd agent id does not hang for a minute).
    const waitMs = this.lastBoot === undefined ? 0 : options.slaveWaitMs ?? this.options.slaveWaitMs ?? DEFAULT_SLAVE_WAIT_MS;
    const deadline = Date.now() + waitMs;
    const version = op === 'agent.hello' ? MIN_PROTOCOL_VERSION : this.version;
    const message = encodeRequest(op, id, args, options.handleBoot, options.caller, version);
    let bootTried: string | undefined;
    for (let attempt = 0; ; attempt++) {
      let raw: Uint8Array;
      const sentTo = this.lastBoot;
      try {
        // Not Promise.race with one shared "lost" promise: every race would leave a reaction on
        // it until it settles, a leak of one closure per request.
        raw = await new Promise<Uint8Array>((resolve, reject) => {
          const waiting: WaitingTry = {
            sentAt: Date.now(),
            giveUp: () => reject(new AgentUnreachableError('disconnected', 'the agent went away or restarted before it answered')),
          };
          this.waiting.add(waiting);
          this.watch();
          const hold = attempt === 0 && options.hold === true;
          (this.batching ? this.batch.request(op, message, timeoutMs, hold) : this.carry(op, message, timeoutMs)).then(
            (data) => { this.waiting.delete(waiting); resolve(data); },
            (err: unknown) => { this.waiting.delete(waiting); reject(err); },
          );
        });
      } catch (err) {
        if (err instanceof AgentUnreachableError && err.reason === 'no-responders') this.agentLost();
        if (err instanceof AgentUnreachableError && err.reason === 'link-lost') {
          // The link went, not the agent: on the bus now, with no pause (see carry).
          clientMetrics.retries.inc();
          continue;
        }
        if (!(err instanceof AgentUnreachableError) || err.reason === 'closed' || Date.now() + RETRY_PAUSE_MS > deadline) throw err;
        if (attempt === 0) this.options.log.warn({ op, reason: err.reason, waitMs }, 'agent unreachable: waiting for it');
        bootTried ??= sentTo; // the boot this try went to (lastBoot may already be the new one)
        clientMetrics.retries.inc();
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
        continue;
      }
      const reply = decodeReply(op, raw);
      this.noteBoot(reply.boot);
      if (attempt > 0) this.options.log.info({ op, attempts: attempt + 1 }, 'agent answered again');
      if (reply.ok) {
        if (op === 'agent.hello') {
          const hello = reply.result as HelloInfo;
          this.version = Math.min(PROTOCOL_VERSION, Math.max(MIN_PROTOCOL_VERSION, hello.protocol));
          this.batching = hello.capabilities.includes('agent.batch') && this.version === PROTOCOL_VERSION;
          if (!this.batching) this.batch.uncork();
          if (this.noteReconnects(hello.reconnects)) this.agentMoved(); // as in watch()
        }
        return reply.result;
      }
      if (reply.error.errnoName === 'EPROTONOSUPPORT' && version > MIN_PROTOCOL_VERSION) {
        // An older agent, met before its hello: ask again in the oldest protocol.
        this.version = MIN_PROTOCOL_VERSION;
        return this.tryCall(op, args, options);
      }
      // A try may have run on an agent that restarted before it answered.
      if (bootTried !== undefined && bootTried !== reply.boot && settled(op, reply.error.errnoName, args)) {
        this.options.log.info({ op, errno: reply.error.errnoName }, 'retry after an agent restart: the first try had done it');
        if (op === 'fs.unlink' || op === 'fs.rmdir') return {} as OpReply<K>;
        if (op === 'fs.create') {
          // The file it made is there: opened as it is (its first handle went with that agent).
          const { path, flags } = args as OpRequest<'fs.create'>;
          return (await this.call('fs.open', { path, flags: flags & ~(O_CREAT | O_EXCL | O_TRUNC) }, options)) as OpReply<K>;
        }
        const { path } = args as { path: string };
        return (await this.call('fs.getattr', { path }, options)) as OpReply<K>;
      }
      throw reply.error;
    }
  }

  async hello(options?: CallOptions): Promise<HelloInfo> {
    return this.call('agent.hello', {}, options);
  }

  /** Says hello again after every reconnection of the bus, so a restarted agent is noticed at once. */
  helloOnReconnect(): void {
    this.bus.onReconnect(() => {
      this.hello({ slaveWaitMs: 0 }).catch((err: unknown) =>
        this.options.log.info({ err }, 'no hello after reconnecting: the agent is not back yet'));
    });
  }

  private noteBoot(boot: string): void {
    if (this.lastBoot !== undefined && this.lastBoot !== boot) {
      this.options.log.warn({ agentId: this.agentId, previousBootId: this.lastBoot, bootId: boot },
        'agent restarted: its boot id changed');
      clientMetrics.restarts.inc();
      this.agentLost();
      for (const listener of this.bootListeners) listener(boot);
    }
    this.lastBoot = boot;
  }
}

/** A hello request with this id, in the oldest protocol, which every agent answers. */
export function helloRequest(id: string): Uint8Array {
  return encodeRequest('agent.hello', id, {}, undefined, undefined, MIN_PROTOCOL_VERSION);
}

/** The hellos among replies to helloRequest; replies that do not decode are skipped. */
export function decodeHellos(replies: Uint8Array[]): HelloInfo[] {
  const agents: HelloInfo[] = [];
  for (const raw of replies) {
    try {
      const reply = decodeReply('agent.hello', raw);
      if (reply.ok) agents.push(reply.result); // decodeReply validated it against the hello schema
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
    }
  }
  return agents;
}

/** Asks every agent on the bus for its hello. */
export async function discoverAgents(bus: Bus, waitMs: number): Promise<HelloInfo[]> {
  return decodeHellos(await bus.requestAll(DISCOVER_SUBJECT, helloRequest('discover'), waitMs));
}

/** No agent, or more than one, answered discovery: the user must say which (--agent). */
export class NoAgentError extends Error {
  override name = 'NoAgentError';
}

const DISCOVERY_WAIT_MS = 500;

/** The only agent on the bus; a clear error when there is none or several. */
export async function chooseAgent(bus: Bus): Promise<string> {
  const agents = await discoverAgents(bus, DISCOVERY_WAIT_MS);
  if (agents.length === 1) return (agents[0] as HelloInfo).agentId;
  if (agents.length === 0) throw new NoAgentError('no agent answered on the bus; is `splitbrain agent` running?');
  const ids = agents.map((a) => `${a.agentId} (${a.hostname})`).join(', ');
  throw new NoAgentError(`several agents answer: ${ids}; choose one with --agent`);
}
