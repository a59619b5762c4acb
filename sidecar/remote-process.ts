/**
 * The master's side of the agent's process service: start a process on the slave, feed its
 * stdin, take its output in order (returning credit as it is written out, so a slow reader here
 * slows the process there), forward signals and window sizes, learn how it ended.
 *
 *   caller --writeStdin--> agent --> process;  process --> agent --events--> output callbacks
 *
 * `ProcessClient` renews the lease of every live process once a second (proc.keepalive): if
 * this side dies, the agent hangs up on its processes within its lease time.
 *
 * No output is lost when this side or the agent moves to another NATS server (NATS drops what
 * is published while a subscriber moves): events arrive numbered, and one that skips a number,
 * a reconnection of our bus, or a keepalive saying the agent has sent more than arrived, makes
 * us ask the agent to send again from the first missing one (proc.resend). The agent keeps
 * every event until we say we have it (`received` with each credit, and after the exit), within
 * its output budget: a master that falls behind it is cut off (a `cut` event, then the exit),
 * and `exited` says so (ExitStatus.cut).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import {
  ProtocolError, SlaveError, decodeEvent, outputSubject, type FORWARDED_SIGNALS, type ProcEvent,
} from '../protocol/index.js';
import type { AgentClient } from '../transport/agent-client.js';
import { AgentUnreachableError } from '../transport/errors.js';

export type ForwardedSignal = (typeof FORWARDED_SIGNALS)[number];

export interface ExitStatus {
  /** The exit code, or null when a signal ended the process. */
  code: number | null;
  signal: string | null;
  /** The slave's change feed position once the process had exited (protocol/changes.ts). */
  changeSeq?: number;
  /**
   * The agent cut the process off because this side fell behind its output budget: the output
   * ended there (what was not received by then is lost) and the process was hung up on.
   */
  cut?: { errno: string; message: string };
}

export interface ProcessOutput {
  /** One chunk of output, in order; call `written` once it is written out (returns credit). */
  stdout(data: Buffer, written: () => void): void;
  stderr(data: Buffer, written: () => void): void;
}

export interface SpawnOptions {
  argv: string[];
  env: Record<string, string>;
  /** A slave path. */
  cwd: string;
  pty: { rows: number; cols: number } | null;
  /** Run as this user, group and supplementary groups on the slave (a root agent's; see proc.spawn). */
  uid?: number;
  gid?: number;
  groups?: number[];
}

/** Output the agent may send ahead of our credit: enough to stream, bounded memory here. */
const WINDOW = 8 * 1024 * 1024;
/** Written output worth a credit request of its own at once (a quarter of the window)... */
const CREDIT_BATCH = WINDOW / 4;
/** ...else credit goes back this long after the first bytes written: the agent is far from the window. */
const CREDIT_DELAY_MS = 10;
const KEEPALIVE_MS = 1000;
/** `exited` of a process this side gave up on (see RemoteProcess.abandon). */
export class AbandonedError extends Error {
  override name = 'AbandonedError';
}

export class ProcessClient {
  private readonly live = new Map<number, RemoteProcess>();
  private readonly timer: NodeJS.Timeout;
  private lastKeepalive = Date.now();

  constructor(
    readonly client: AgentClient,
    private readonly log: Logger,
    /** The agent's lease: past it without a keepalive, our processes are gone. */
    private readonly leaseMs = 5000,
  ) {
    this.timer = setInterval(() => void this.keepalive(), KEEPALIVE_MS);
    this.timer.unref();
    // Our subscriptions moved with us: what was published meanwhile is asked for again.
    client.bus.onReconnect(() => {
      for (const proc of this.live.values()) proc.askAgain('our bus reconnected');
    });
  }

  /** `handleBoot`: run it only on that agent boot (else ESTALE), as a decision about its user was made for it. */
  async spawn(options: SpawnOptions, output: ProcessOutput, handleBoot?: string): Promise<RemoteProcess> {
    const bus = this.client.bus;
    // Under the agent's own output subjects, which the bus lets only its masters read.
    const subject = outputSubject(this.client.agentId, randomBytes(12).toString('hex'));
    let proc: RemoteProcess | undefined;
    const early: ProcEvent[] = []; // events may beat the spawn's reply
    const receive = (data: Uint8Array): void => {
      let event: ProcEvent;
      try {
        event = decodeEvent(data);
      } catch (err) {
        this.log.warn({ err }, 'undecodable process event dropped');
        return;
      }
      if (proc) proc.receive(event);
      else early.push(event);
    };
    // On the bus, and down the client's session link while it is up (an agent that has one routes
    // the output there: one TCP hop instead of two through the NATS server).
    const sub = await bus.subscribe(subject, receive);
    const unroute = this.client.onRouted(subject, receive);
    const linkOutput = this.client.linkIdentity;
    try {
      const { procId, pid } = await this.client.call('proc.spawn', {
        ...options, output: subject, window: WINDOW, cuts: true, ...(linkOutput === undefined ? {} : { linkOutput }),
      }, { handleBoot });
      proc = new RemoteProcess(this.client, procId, pid, this.client.bootId ?? '', output, () => {
        sub.stop();
        unroute();
        this.live.delete(procId);
      }, this.log, linkOutput);
      this.live.set(procId, proc);
      for (const event of early) proc.receive(event);
      return proc;
    } catch (err) {
      sub.stop();
      unroute();
      throw err;
    }
  }

  /**
   * Runs `argv` on the slave (in /, no stdin, the slave's own environment) and collects its
   * output as text: for the bridge's own questions to the slave (its commands, its sys.path).
   */
  async capture(argv: string[]): Promise<{ out: string; err: string; status: ExitStatus }> {
    let out = '';
    let err = '';
    const proc = await this.spawn({ argv, env: {}, cwd: '/', pty: null }, {
      stdout: (data, written) => { out += data.toString('utf8'); written(); },
      stderr: (data, written) => { err += data.toString('utf8'); written(); },
    });
    await proc.endStdin();
    const status = await proc.exited; // before `out` and `err` are read: they fill until then
    return { out, err, status };
  }

  private async keepalive(): Promise<void> {
    if (this.live.size === 0) {
      this.lastKeepalive = Date.now();
      return;
    }
    for (const proc of [...this.live.values()]) {
      if (proc.restartedUnder(this.client.bootId)) proc.lost('the slave restarted');
    }
    if (this.live.size === 0) return;
    try {
      // One try: the lease decides how long a process outlives a silent agent.
      const { gone, next = [] } = await this.client.call('proc.keepalive', { procIds: [...this.live.keys()] },
        { timeoutMs: KEEPALIVE_MS * 3, slaveWaitMs: 0 });
      this.lastKeepalive = Date.now();
      for (const id of gone) this.live.get(id)?.lost('the slave no longer knows this process');
      for (const [id, sent] of next) this.live.get(id)?.agentSent(sent);
      for (const proc of [...this.live.values()]) {
        if (proc.restartedUnder(this.client.bootId)) proc.lost('the slave restarted');
      }
    } catch (err) {
      if (Date.now() - this.lastKeepalive <= this.leaseMs) return;
      for (const proc of this.live.values()) {
        proc.fail(err instanceof Error ? err : new AgentUnreachableError('timeout', String(err)));
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
    for (const proc of this.live.values()) proc.abandon();
  }
}

export class RemoteProcess {
  readonly exited: Promise<ExitStatus>;
  private resolveExit!: (status: ExitStatus) => void;
  private rejectExit!: (err: Error) => void;
  private nextSeq = 0;
  private done = false;
  private credit = 0;
  private creditScheduled = false;
  private creditTimer: NodeJS.Timeout | undefined;
  /** A proc.resend is on its way: gaps meanwhile are what it fills. */
  private resending = false;
  /** nextSeq at the last keepalive that showed the agent ahead of us. */
  private behindAt: number | undefined;
  /** Set by a `cut` event: the exit that follows carries it. */
  private cut: ExitStatus['cut'];

  constructor(
    private readonly client: AgentClient,
    readonly procId: number,
    /** The process id on the slave. */
    readonly slavePid: number,
    /** The agent boot that runs it: a restarted agent no longer has it (ESTALE). */
    private readonly boot: string,
    private readonly output: ProcessOutput,
    private readonly onDone: () => void,
    private readonly log: Logger,
    /** The session link the agent sends its output down, while that link is up (proc.spawn's `linkOutput`). */
    private readonly linkOutput?: string,
  ) {
    this.exited = new Promise((resolve, reject) => {
      this.resolveExit = resolve;
      this.rejectExit = reject;
    });
    this.exited.catch(() => undefined); // callers that never await it must not crash us
  }

  receive(event: ProcEvent): void {
    if (this.done) return;
    if (event.seq < this.nextSeq) return; // sent again, and we had it
    if ('cut' in event) {
      // The agent dropped what it kept: events before this one that did not arrive never will.
      if (event.seq > this.nextSeq) this.log.warn({ procId: this.procId, lost: event.seq - this.nextSeq }, 'process output events lost at a cut');
      this.log.warn({ procId: this.procId, slavePid: this.slavePid, reason: event.cut.message }, 'the agent cut off a process\'s output');
      this.nextSeq = event.seq + 1;
      this.cut = event.cut;
      return;
    }
    if (event.seq > this.nextSeq) {
      this.askAgain(`event ${event.seq} arrived, ${this.nextSeq} expected`);
      return;
    }
    this.nextSeq++;
    if ('exit' in event) {
      this.finish();
      this.resolveExit(this.cut === undefined ? event.exit : { ...event.exit, cut: this.cut });
      // The agent keeps an ended process until it knows we have its exit.
      this.quietly('proc.credit', this.client.call('proc.credit', { procId: this.procId, bytes: 0, received: this.nextSeq }, { handleBoot: this.boot }));
      return;
    }
    const data = Buffer.from(event.data.buffer, event.data.byteOffset, event.data.byteLength);
    const written = () => this.returnCredit(data.length);
    if (event.stream === 'stdout') this.output.stdout(data, written);
    else this.output.stderr(data, written);
  }

  /**
   * Credit goes back in batches: at the end of the loop turn once a batch's worth is written
   * out, else a moment later with whatever was written meanwhile. Per loop turn it was a
   * request (and a reply) for every ~700 KB of a streaming command's output (issue 22).
   */
  private returnCredit(bytes: number): void {
    this.credit += bytes;
    if (this.done) return;
    if (this.credit >= CREDIT_BATCH) {
      if (this.creditTimer !== undefined) clearTimeout(this.creditTimer);
      this.creditTimer = undefined;
      if (this.creditScheduled) return;
      this.creditScheduled = true;
      setImmediate(() => this.sendCredit());
      return;
    }
    if (this.creditTimer === undefined && !this.creditScheduled) this.creditTimer = setTimeout(() => this.sendCredit(), CREDIT_DELAY_MS);
  }

  private sendCredit(): void {
    this.creditScheduled = false;
    clearTimeout(this.creditTimer);
    this.creditTimer = undefined;
    const bytes = this.credit;
    this.credit = 0;
    if (bytes > 0 && !this.done) {
      this.quietly('proc.credit', this.client.call('proc.credit', { procId: this.procId, bytes, received: this.nextSeq }, { handleBoot: this.boot }));
    }
  }

  /**
   * Events from nextSeq on did not arrive (a gap, a reconnection): the agent sends them again.
   * One request at a time; what is still missing after it shows up as a gap again, or at the
   * next keepalive. A protocol error (an agent older than proc.resend) is what it always was.
   */
  askAgain(why: string): void {
    if (this.done || this.resending) return;
    this.resending = true;
    this.log.info({ procId: this.procId, from: this.nextSeq, why }, 'process output missed: asking the agent to send it again');
    // Our end of the link its output went down is gone: the agent's may not know it yet (a link
    // whose packets are dropped looks alive to it for minutes), so it is told to use the bus.
    const bus = this.linkOutput !== undefined && this.client.linkIdentity !== this.linkOutput;
    this.client.call('proc.resend', { procId: this.procId, from: this.nextSeq, ...(bus ? { bus } : {}) }, { handleBoot: this.boot })
      .catch((err: unknown) => {
        if (err instanceof SlaveError && err.errnoName === 'ENOSYS') {
          this.fail(new ProtocolError(`process output lost (${why}), and the agent cannot send it again`));
        } else {
          this.log.debug({ err, procId: this.procId }, 'proc.resend failed');
        }
      })
      .finally(() => { this.resending = false; });
  }

  /** A keepalive says the agent's next event will be `next`: behind it twice running, we lost some. */
  agentSent(next: number): void {
    if (next <= this.nextSeq) {
      this.behindAt = undefined;
      return;
    }
    if (this.behindAt === this.nextSeq) this.askAgain(`the agent has sent up to ${next - 1}, ${this.nextSeq} is missing`);
    this.behindAt = this.nextSeq;
  }

  /** Resolves once the process has the bytes in its stdin; EPIPE if it closed it. */
  async writeStdin(data: Uint8Array): Promise<void> {
    await this.client.call('proc.stdin', { procId: this.procId, data, eof: false }, { handleBoot: this.boot });
  }

  /** Closes the process's stdin; a process that has ended has none to close, and that is no error. */
  async endStdin(): Promise<void> {
    try {
      await this.client.call('proc.stdin', { procId: this.procId, data: new Uint8Array(0), eof: true }, { handleBoot: this.boot });
    } catch (err) {
      // Gone (ESRCH), or its stdin closed (EPIPE, which older agents answered to a mere end of
      // input): either way it reads no more, which is what ending its input asks.
      if (!(err instanceof SlaveError && (err.errnoName === 'ESRCH' || err.errnoName === 'EPIPE'))) throw err;
    }
  }

  signal(signal: ForwardedSignal): void {
    if (!this.done) this.quietly('proc.signal', this.client.call('proc.signal', { procId: this.procId, signal }, { handleBoot: this.boot }));
  }

  resize(rows: number, cols: number): void {
    if (!this.done) this.quietly('proc.resize', this.client.call('proc.resize', { procId: this.procId, rows, cols }, { handleBoot: this.boot }));
  }

  /**
   * Nobody wants this process any more: the agent hangs up on it (output pipes closed, SIGHUP,
   * SIGKILL if it lingers) and `exited` rejects with AbandonedError. Resolves once the agent
   * answered the hang-up (or could not be asked).
   */
  abandon(): Promise<void> {
    if (this.done) return Promise.resolve();
    const hangup = this.client.call('proc.hangup', { procId: this.procId }, { handleBoot: this.boot, slaveWaitMs: 0 });
    this.quietly('proc.hangup', hangup);
    this.fail(new AbandonedError(`process ${this.slavePid} on the slave was hung up on`));
    // Settles once the agent has it: a caller about to exit waits, or only the lease would end it.
    return hangup.then(() => undefined, () => undefined);
  }

  /** The agent forgot the process without sending its exit (its exit event was lost). */
  /** Whether the agent now answering is a later run than the one that started this process. */
  restartedUnder(boot: string | undefined): boolean {
    return boot !== undefined && boot !== this.boot;
  }

  lost(reason: string): void {
    this.fail(new SlaveError('EIO', `process ${this.slavePid} on the slave: ${reason}`));
  }

  fail(err: Error): void {
    if (this.done) return;
    this.finish();
    this.rejectExit(err);
  }

  private finish(): void {
    this.done = true;
    clearTimeout(this.creditTimer);
    this.onDone();
  }

  /** Fire and forget: a failure is logged; a lost agent shows up in the keepalive. */
  private quietly(op: string, request: Promise<unknown>): void {
    request.catch((err: unknown) => {
      if (err instanceof SlaveError && err.errnoName === 'ESRCH') return; // it has just ended
      this.log.debug({ err, op, procId: this.procId }, 'process request failed');
    });
  }
}
