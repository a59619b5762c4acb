/**
 * The processes the agent runs for masters, by the id their spawn reply gave. Each lives on a
 * lease that every request naming it renews (masters send `proc.keepalive` every second): a
 * process whose master stops asking is hung up on, so nothing outlives a bridge or an
 * `splitbrain exec` that died or lost the bus. While the agent's own connection to the bus is
 * down no master can reach it: leases do not run out then, and start again when it is back.
 * An ended process is kept until its master has its exit (spawned-process.ts), or its lease runs out.
 */
import type { Logger } from 'pino';
import { HandleIds, SlaveError } from '../../protocol/index.js';
import { agentMetrics } from '../agent-metrics.js';
import type { LinkRoute } from '../links.js';
import type { ProcessesBackend } from '../backends/processes-backend.js';
import { OutputBudget } from './output-budget.js';
import { OutputBuffers } from './output-buffers.js';
import { SpawnedProcess, type SpawnSpec } from './spawned-process.js';

export interface ProcessTableOptions {
  /** Starts the processes: the platform's (agent/backends). */
  backend: ProcessesBackend;
  /** Sends one event to the master's output subject. */
  publish(subject: string, data: Uint8Array): void;
  /** How long a process lives without a request naming it. */
  leaseMs: number;
  maxProcesses: number;
  /**
   * The change feed's position once everything a process changed is published (its exit
   * event carries it); undefined without a feed.
   */
  changeSeq?: () => Promise<number | undefined>;
  /** False while the agent's connection to the bus is down (leases then wait). */
  connected?: () => boolean;
  /** Output kept for all processes (bytes), and how long a master may stay behind it (output-budget.ts). */
  outputBudget: number;
  outputGraceMs: number;
  log: Logger;
}

/** Free output buffers kept (about 1 MiB each): a streaming command's window, 8 MiB, and one more. */
const OUTPUT_BUFFERS_FREE = 9;

export class ProcessTable {
  private readonly procs = new Map<number, SpawnedProcess>();
  private readonly ids = new HandleIds();
  private readonly sweeper: NodeJS.Timeout;
  readonly budget: OutputBudget;
  /** Memory for output events, shared by every process (output-buffers.ts). */
  private buffers: OutputBuffers | undefined;
  /** The session links processes' output goes down while they are up, by procId (spawn's `route`). */
  private readonly routes = new Map<number, LinkRoute>();

  constructor(private readonly options: ProcessTableOptions) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(100, Math.floor(options.leaseMs / 4)));
    this.sweeper.unref();
    this.budget = new OutputBudget(options.outputBudget, options.outputGraceMs, options.backend.outputReadBytes, () => agentMetrics.outputCuts.inc());
  }

  get size(): number {
    return this.procs.size;
  }

  /** Forgets a process: the budget frees what it kept. */
  private remove(proc: SpawnedProcess): void {
    if (this.procs.get(proc.procId) === proc) {
      this.procs.delete(proc.procId);
      this.routes.delete(proc.procId);
    }
    this.budget.leave(proc);
  }

  /** `route`: the master's session link, which its output goes down while it is up (links.ts). */
  async spawn(spec: SpawnSpec, output: string, route?: LinkRoute): Promise<SpawnedProcess> {
    if (this.procs.size >= this.options.maxProcesses) {
      throw new SlaveError('EAGAIN', `the agent runs ${this.procs.size} processes already (its limit)`);
    }
    const procId = this.ids.take((id) => this.procs.has(id));
    const log = this.options.log;
    const publish = this.options.publish;
    const routes = this.routes;
    if (route === undefined) routes.delete(procId);
    else routes.set(procId, route);
    const sink = (event: Uint8Array): void => {
      const routed = routes.get(procId);
      if (routed === undefined || !routed(output, event)) publish(output, event);
    };
    if (this.buffers?.size !== spec.maxChunk) this.buffers = new OutputBuffers(spec.maxChunk, OUTPUT_BUFFERS_FREE);
    let proc: SpawnedProcess;
    try {
      proc = await SpawnedProcess.start(
        procId, spec, sink, () => this.remove(proc), log, this.budget, this.buffers, this.options.backend, this.options.changeSeq,
      );
    } catch (err) {
      routes.delete(procId);
      throw err;
    }
    this.procs.set(procId, proc);
    log.debug({ procId, pid: proc.pid, argv: spec.argv, pty: spec.pty !== null }, 'process started');
    return proc;
  }

  /** The process's output goes on the bus from now on: its master's link is gone (proc.resend's `bus`). */
  offLink(procId: number): void {
    this.routes.delete(procId);
  }

  /** The running process, its lease renewed; ESRCH once it has ended. */
  get(procId: number): SpawnedProcess {
    const proc = this.find(procId);
    if (proc.ended) throw new SlaveError('ESRCH', `process ${procId} on this agent has ended`);
    return proc;
  }

  /** The process, running or ended but not yet received as such, its lease renewed; else ESRCH. */
  find(procId: number): SpawnedProcess {
    const proc = this.procs.get(procId);
    if (!proc) throw new SlaveError('ESRCH', `no process ${procId} on this agent (it has ended)`);
    proc.lastSeen = Date.now();
    return proc;
  }

  /** Renews the leases of these processes; returns those the agent does not know, and where the others' events are. */
  keepalive(procIds: number[]): { gone: number[]; next: [number, number][] } {
    const now = Date.now();
    const gone: number[] = [];
    const next: [number, number][] = [];
    for (const id of procIds) {
      const proc = this.procs.get(id);
      if (!proc) {
        gone.push(id);
        continue;
      }
      proc.lastSeen = now;
      next.push([id, proc.nextSeq]);
    }
    return { gone, next };
  }

  /** The agent is back on the bus: its masters get a whole lease to find it again. */
  renewAll(): void {
    const now = Date.now();
    for (const proc of this.procs.values()) proc.lastSeen = now;
  }

  private sweep(): void {
    if (this.options.connected?.() === false) return;
    const expired = Date.now() - this.options.leaseMs;
    for (const proc of [...this.procs.values()]) {
      if (proc.lastSeen >= expired) continue;
      if (proc.ended) {
        this.remove(proc); // its master is gone, or had the exit and said nothing
        continue;
      }
      this.options.log.warn({ procId: proc.procId, pid: proc.pid }, 'its master stopped asking for it: hanging up');
      proc.hangUp();
    }
  }

  /** Agent shutdown: every process is hung up on. */
  close(): void {
    clearInterval(this.sweeper);
    this.budget.close();
    for (const proc of this.procs.values()) proc.hangUp();
  }
}
