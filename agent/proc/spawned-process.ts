/**
 * One process the agent started for a master: pipes or a pseudo-terminal, its output sent as
 * events within a credit window, its stdin written on request, signals, resizes, and the hang-up
 * that ends it when the master is gone.
 *
 * Every event sent is kept until the master has it (it says so with `received`, or by crediting
 * the output: credited bytes were received), and sent again on request (`resend`): NATS drops
 * what is published while a subscriber moves to another server, and the master asks again from
 * the first event it missed. The window bounds what is kept, as it bounds what is in flight: the
 * master's window or the process's share of the agent's output budget, whichever is smaller
 * (output-budget.ts), and no more than has opened as the master took output (FIRST_WINDOW). A
 * process whose master falls behind that budget is cut off (`cut`). An ended process stays
 * known until its exit is received, or its lease runs out.
 *
 *   master --proc.stdin--> agent --pipe/pty--> process --pipe/pty--> agent --events--> master
 */
import type { Logger } from 'pino';
import { SlaveError, encodeEvent, encodeOutputEvent, encodeOutputEventInPlace } from '../../protocol/index.js';
import type { OutputStream, ProcessEvents, ProcessesBackend, RunningProcess } from '../backends/processes-backend.js';
import type { OutputBuffers } from './output-buffers.js';
import { KeptEvents, type Kept } from './kept-events.js';
import type { BudgetMember, OutputBudget } from './output-budget.js';

export interface SpawnSpec {
  /**
   * argv[0] resolved to the executable's host path (ProcessesBackend.findCommand), or the wrapper that
   * runs it (ProcessesBackend.enterNamespaces and runAs: the user it runs as is in its argv).
   */
  file: string;
  argv: string[];
  env: Record<string, string>;
  /** Host path. */
  cwd: string;
  pty: { rows: number; cols: number } | null;
  /** Output bytes that may be on their way before the master returns credit. */
  window: number;
  /** Largest output event: what one bus message holds. */
  maxChunk: number;
  /** The master reads `cut` events (proc.spawn's `cuts`). */
  cuts: boolean;
}

type Stream = OutputStream;
/** Publishes one encoded event to the master's output subject. */
export type EventSink = (event: Uint8Array) => void;

/**
 * Output is sent at the end of the loop turn it arrived in while the master keeps up (little
 * uncredited), so interactive output is not delayed; while it streams, for up to this long more
 * is gathered into one event: fewer, larger messages move more bytes per CPU second. Long
 * enough to fill an event's buffer (about 1 MiB) at a few hundred MB/s: 1 ms made events of
 * ~300 KB, two to three messages per MiB (issue 22).
 */
const GATHER_MS = 8;
const KEEPING_UP = 64 * 1024;
/**
 * A process's window starts here and doubles each time its master credits output the process
 * had to wait for, up to the master's window (8 MiB): a master that keeps up has its whole window
 * after three such credits, and one that never takes any leaves the agent
 * holding this much of its output, not 8 MiB (issue 22: 100 stalled readers). The TCP receive
 * window's auto-tuning and OpenSSH's channel windows grow the same way.
 */
const FIRST_WINDOW = 1024 * 1024;
/** After the hang-up, how long a process may take before it is killed. */
const HANGUP_GRACE_MS = 3000;

export class SpawnedProcess implements BudgetMember {
  lastSeen = Date.now();
  behindSince: number | undefined;
  /** Set once cut off: output that still comes is dropped. */
  private cutOff = false;
  private seq = 0;
  /** Output bytes sent and not yet credited back by the master. */
  private inFlight = 0;
  /** How far the window has opened (FIRST_WINDOW). */
  private opened = FIRST_WINDOW;
  private paused = false;
  /** Output gathered for the next event, in a buffer of `buffers` (output-buffers.ts). */
  private pending: { stream: Stream; buffer: Buffer; bytes: number } | null = null;
  private flushScheduled = false;
  private exited = false;
  private killTimer: NodeJS.Timeout | undefined;
  /** Events sent and not known received, counted against the agent's output budget. */
  private readonly kept: KeptEvents;
  /** Kept events built in a buffer of `buffers`, which they hold until received. */
  private pinned = 0;
  private sentBytes = 0;
  private creditedBytes = 0;
  /** The exit event's seq, once sent. */
  private exitSeq: number | undefined;
  private forgotten = false;

  private constructor(
    readonly procId: number,
    readonly pid: number,
    private readonly spec: SpawnSpec,
    private readonly child: RunningProcess,
    private readonly sink: EventSink,
    /** The process ended and its master has the exit: the table may forget it. */
    private readonly onExit: () => void,
    private readonly log: Logger,
    private readonly budget: OutputBudget,
    private readonly buffers: OutputBuffers,
    private readonly changeSeq: (() => Promise<number | undefined>) | undefined,
  ) {
    this.kept = new KeptEvents((delta) => budget.changed(this, delta));
    budget.join(this);
  }

  /** Resolves once the process runs (its pid known); spawn errors reject with their errno. */
  static async start(
    procId: number, spec: SpawnSpec, sink: EventSink, onExit: () => void, log: Logger, budget: OutputBudget,
    buffers: OutputBuffers, backend: ProcessesBackend, changeSeq?: () => Promise<number | undefined>,
  ): Promise<SpawnedProcess> {
    const events = new EarlyEvents(log, procId);
    const child = await backend.start(spec, events);
    const proc = new SpawnedProcess(procId, child.pid, spec, child, sink, onExit, log, budget, buffers, changeSeq);
    events.deliverTo({
      output: (stream, data) => proc.output(stream, data),
      exit: (code, signal) => void proc.finish(code, signal),
    });
    return proc;
  }

  /** What may be sent and not credited now: the master's window, or less: the process's share of the budget, or what has opened. */
  private window(): number {
    return Math.min(this.spec.window, this.budget.share(), this.opened);
  }

  /** Gathers output of one loop turn into one event (pipes deliver 64 KiB reads). */
  private output(stream: Stream, chunk: Buffer): void {
    if (this.cutOff) return; // what the pipe or terminal still held: nobody will take it
    if (this.pending && this.pending.stream !== stream) this.flush();
    // Copied into the event's own buffer as it arrives; an event is sent when its buffer is full.
    for (let at = 0; at < chunk.length;) {
      this.pending ??= { stream, buffer: this.buffers.take(), bytes: 0 };
      const copied = chunk.copy(this.pending.buffer, this.pending.bytes, at);
      this.pending.bytes += copied;
      at += copied;
      if (this.pending.bytes === this.pending.buffer.length) this.flush();
    }
    const keepingUp = this.inFlight < KEEPING_UP;
    this.inFlight += chunk.length;
    if (this.inFlight >= this.window()) this.pause();
    if (this.paused) {
      this.flush(); // nothing more comes until credit returns
      return;
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const flush = () => {
      this.flushScheduled = false;
      this.flush();
    };
    if (keepingUp) setImmediate(flush);
    else setTimeout(flush, GATHER_MS);
  }

  private flush(): void {
    const pending = this.pending;
    if (!pending) return;
    this.pending = null;
    if (this.cutOff) {
      this.buffers.give(pending.buffer);
      return;
    }
    this.sentBytes += pending.bytes;
    const data = pending.buffer.subarray(0, pending.bytes);
    // Built in its buffer when it fills much of it, and the process pins no more buffers than
    // its window needs: what kept events hold stays near what the window bounds. Otherwise
    // copied into a message of its size, and the buffer is free at once.
    const inPlace = this.buffers.worthPinning(pending.bytes) && this.pinned < this.buffers.pinsFor(this.window());
    const event = inPlace
      ? encodeOutputEventInPlace(this.procId, this.seq++, pending.stream, data)
      : encodeOutputEvent(this.procId, this.seq++, pending.stream, [data]);
    if (inPlace) this.pinned++;
    else this.buffers.give(pending.buffer);
    this.send(event, this.sentBytes, inPlace);
  }

  private send(event: Uint8Array, end: number, pinned = false): void {
    this.kept.push(this.seq - 1, end, event, pinned);
    this.sink(event);
  }

  /** Received (or dropped): the connection wrote them, and their buffers hold the next output. */
  private release(dropped: Kept[]): void {
    for (const kept of dropped) {
      if (!kept.pinned) continue;
      this.pinned--;
      if (!kept.resent) this.buffers.give(kept.event);
    }
  }

  /** Bytes of the events kept, as the agent's output budget counts them. */
  get keptBytes(): number {
    return this.kept.bytes;
  }

  /** The seq the next event will have. */
  get nextSeq(): number {
    return this.seq;
  }

  /** Whether the process has ended (its exit is sent; it stays known until received). */
  get ended(): boolean {
    return this.exitSeq !== undefined;
  }

  /** Publishes again every kept event from `from` on (the master missed them). */
  resend(from: number): number {
    const events = this.kept.from(from);
    for (const event of events) this.sink(event);
    return events.length;
  }

  /** Events before `next`, and output the master credited, were received: no need to keep them. */
  private forget(next: number): void {
    this.release(this.kept.forget(next, this.creditedBytes));
    if (this.exitSeq !== undefined && next > this.exitSeq && !this.forgotten) {
      this.forgotten = true;
      this.onExit();
    }
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.child.pauseOutput();
  }

  /** The master wrote out `bytes` more (so it received them), and has every event before `received`. */
  credit(bytes: number, received?: number): void {
    // Output waited for this credit: the master takes it as fast as it comes, and more in flight
    // would have moved more.
    if (this.paused && bytes > 0) this.opened = Math.min(this.spec.window, this.opened * 2);
    this.creditedBytes += bytes;
    this.forget(received ?? 0);
    this.inFlight = Math.max(0, this.inFlight - bytes);
    this.resumeIfRoom();
  }

  /** Reads the process's output again once its window has room. */
  private resumeIfRoom(): void {
    if (!this.paused || this.cutOff || this.inFlight >= this.window()) return;
    this.paused = false;
    this.child.resumeOutput();
  }

  /**
   * Its master fell behind the agent's output budget (output-budget.ts): what is kept of its
   * output is dropped, and the process is hung up on as when its master goes away (its output
   * closed: a writer gets SIGPIPE, as when a pipe's reader leaves; then SIGHUP, SIGKILL).
   * A master that reads `cut` events is told so at this seq; its exit follows.
   */
  cut(message: string): void {
    if (this.cutOff || this.exitSeq !== undefined) return;
    this.cutOff = true;
    this.pending = null;
    const dropped = this.keptBytes;
    this.hangUp(true);
    this.log.warn({ procId: this.procId, pid: this.pid, dropped, toldMaster: this.spec.cuts }, message);
    if (this.spec.cuts) {
      // Kept until received, as the exit: credit for the output before it says nothing of it.
      this.send(encodeEvent({ procId: this.procId, seq: this.seq++, cut: { errno: 'ENOBUFS', message } }), Infinity);
    }
  }

  async writeStdin(data: Uint8Array, eof: boolean): Promise<void> {
    await this.child.writeStdin(data, eof);
  }

  signal(name: NodeJS.Signals): void {
    if (!this.exited) this.child.signal(name);
  }

  resize(rows: number, cols: number): void {
    if (!this.child.terminal) throw new SlaveError('ENOTTY', 'the process has no terminal');
    if (!this.exited) this.child.resize(rows, cols);
  }

  /**
   * The master is gone, as a dropped ssh session: the output pipes close (a writer gets SIGPIPE),
   * the process group gets SIGHUP, then SIGKILL if it lingers. `masterGone`: it said so itself
   * (proc.hangup; not a lease that ran out, whose master may come back and ask for the output).
   */
  hangUp(masterGone = false): void {
    if (masterGone) {
      // Nobody will ask for it again: what is kept of the output is freed now, not at the lease's end.
      this.release(this.kept.clear());
    }
    if (this.exited || this.killTimer) return;
    this.child.closeOutput();
    this.child.signalGroup('SIGHUP');
    this.killTimer = setTimeout(() => this.child.signalGroup('SIGKILL'), HANGUP_GRACE_MS);
    this.killTimer.unref();
  }

  private async finish(code: number | null, signal: string | null): Promise<void> {
    if (this.exited) return;
    this.exited = true;
    clearTimeout(this.killTimer);
    this.flush();
    // What the process changed on the slave is published before its exit: a master that applies
    // the feed up to changeSeq sees it all (the bridge's barrier).
    const changeSeq = await this.changeSeq?.().catch(() => undefined);
    this.exitSeq = this.seq;
    this.send(encodeEvent({
      procId: this.procId, seq: this.seq++, exit: { code, signal, ...(changeSeq === undefined ? {} : { changeSeq }) },
    }), Infinity);
    this.log.debug({ procId: this.procId, pid: this.pid, code, signal }, 'process ended');
  }
}

/**
 * The process's events until its SpawnedProcess exists (the backend reports from the moment it
 * starts), then straight through. Output is copied while it waits: its bytes are lent.
 */
class EarlyEvents implements ProcessEvents {
  private target: Pick<ProcessEvents, 'output' | 'exit'> | undefined;
  private readonly early: (() => void)[] = [];

  constructor(private readonly log: Logger, private readonly procId: number) {}

  output(stream: Stream, data: Buffer): void {
    if (this.target) return this.target.output(stream, data);
    const copy = Buffer.from(data);
    this.early.push(() => this.target?.output(stream, copy));
  }

  exit(code: number | null, signal: string | null): void {
    if (this.target) return this.target.exit(code, signal);
    this.early.push(() => this.target?.exit(code, signal));
  }

  noted(err: Error, what: string): void {
    this.log.debug({ err, procId: this.procId }, what);
  }

  deliverTo(target: Pick<ProcessEvents, 'output' | 'exit'>): void {
    this.target = target;
    for (const event of this.early.splice(0)) event();
  }
}
