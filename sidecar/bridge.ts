/**
 * The spawn bridge: a Unix socket server for the exec shim. Each connection is one command:
 * START names it, the policy decides its slave cwd and environment, `identity` who it runs as
 * (bridge-identity.ts), the agent runs it, and the frames carry its stdio, signals, window size
 * and end (shim/README.md).
 *
 *   shim --STDIN--> bridge --proc.stdin--> agent;  agent --events--> bridge --STDOUT/STDERR--> shim
 *
 * Flow control holds end to end: the socket is paused while stdin is on its way, and output is
 * credited back to the agent only once the shim's socket took it.
 */
import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { constants } from 'node:os';
import type { Logger } from 'pino';
import { FORWARDED_SIGNALS, SlaveError } from '../protocol/index.js';
import type { BridgeIdentity } from './bridge-identity.js';
import type { BridgePolicy } from './bridge-policy.js';
import { ExecUserError } from './exec-user.js';
import { STATUS_NOT_EXECUTABLE, cutMessage, exitStatusOf, failureStatus, signalNumber } from './exit-status.js';
import type { ForwardedSignal, ProcessClient, RemoteProcess } from './remote-process.js';
import { StdinWriter } from './stdin-writer.js';
import {
  FrameDecoder, FrameType, decodeStart, decodeWinsize, encodeError, encodeExit, outputFrames, type Frame, type StartRequest,
} from './shim-frames.js';

export interface BridgeOptions {
  socketPath: string;
  procs: ProcessClient;
  policy: BridgePolicy;
  /** Who a command runs as on the slave, given who the shim says runs it. */
  identity: BridgeIdentity;
  agentId: string;
  log: Logger;
  /**
   * Runs after every bridged command, before the shim hears it ended, with the change feed's
   * position at its exit (undefined when not known): the sidecar waits for the slave mount to
   * have applied those changes, so what the command wrote is seen at once.
   */
  afterCommand?: (changeSeq: number | undefined) => Promise<void>;
  /**
   * Runs before every bridged command starts: the sidecar waits until what the test wrote and
   * changed through the slave mount is applied on the slave (the mount answers many changes
   * before the slave made them), so the command sees it.
   */
  beforeCommand?: () => Promise<void>;
}

const STATUS_PROTOCOL_ERROR = 255;

export class Bridge {
  private readonly sessions = new Set<ShimSession>();

  private constructor(private readonly server: Server, private readonly options: BridgeOptions) {}

  static async listen(options: BridgeOptions): Promise<Bridge> {
    await rm(options.socketPath, { force: true }); // a socket file left by a bridge that died
    const server = createServer();
    const bridge = new Bridge(server, options);
    server.on('connection', (socket) => bridge.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.socketPath, () => resolve());
    });
    // Test containers may run as any user: whoever can reach the socket may run commands.
    await chmod(options.socketPath, 0o666);
    return bridge;
  }

  private accept(socket: Socket): void {
    const session = new ShimSession(socket, this.options, () => this.sessions.delete(session));
    this.sessions.add(session);
  }

  /** Stops accepting; running commands are hung up on (their shims then exit 255). */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const session of this.sessions) session.hangUp();
    await rm(this.options.socketPath, { force: true });
  }
}

const SIGNAL_NAMES = new Map<number, ForwardedSignal>();
for (const name of FORWARDED_SIGNALS) {
  const num = (constants.signals as Record<string, number>)[name];
  if (num !== undefined) SIGNAL_NAMES.set(num, name);
}

class ShimSession {
  private readonly decoder = new FrameDecoder();
  private proc: RemoteProcess | undefined;
  private starting = false;
  /** Frames that came after START while the process was being started. */
  private readonly queued: Frame[] = [];
  private stdinWriter: StdinWriter | undefined;
  private finished = false;
  private readonly log: Logger;

  constructor(private readonly socket: Socket, private readonly options: BridgeOptions, onClose: () => void) {
    this.log = options.log;
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.log.debug({ err }, 'shim connection failed'));
    socket.on('close', () => {
      onClose();
      // The shim went away (killed, its stdout closed): the command is not wanted any more.
      if (!this.finished) this.proc?.abandon();
      this.finished = true;
    });
  }

  hangUp(): void {
    this.proc?.abandon();
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(STATUS_PROTOCOL_ERROR, `bad frame from the shim: ${(err as Error).message}`);
      return;
    }
    for (const frame of frames) {
      if (!this.proc) {
        if (this.starting) this.queued.push(frame);
        else this.start(frame);
      } else {
        this.handle(this.proc, frame);
      }
    }
  }

  private start(frame: Frame): void {
    if (frame.type !== FrameType.Start) {
      this.fail(STATUS_PROTOCOL_ERROR, `the shim's first frame must be START, not 0x${frame.type.toString(16)}`);
      return;
    }
    this.starting = true;
    let request;
    try {
      request = decodeStart(frame.payload);
    } catch (err) {
      this.fail(STATUS_PROTOCOL_ERROR, `bad START frame: ${(err as Error).message}`);
      return;
    }
    const { agentId } = this.options;
    this.spawn(request).then((proc) => {
      this.log.debug({ argv: request.argv, slavePid: proc.slavePid }, 'bridged command started');
      if (this.finished) {
        proc.abandon(); // the shim left while we were starting it
        return;
      }
      this.proc = proc;
      for (const queued of this.queued.splice(0)) this.handle(proc, queued);
      proc.exited.then((status) => {
        if (status.cut !== undefined) {
          // The shim prints the message and exits with the status (exit-status.ts).
          this.end(encodeError(exitStatusOf(status), cutMessage(status.cut, request.argv[0] ?? '', agentId)), status.changeSeq);
          return;
        }
        const frame = status.code !== null
          ? encodeExit('exited', status.code)
          : encodeExit('signaled', signalNumber(status.signal ?? '') ?? 0);
        this.end(frame, status.changeSeq);
      }, (err: unknown) => {
        const failure = failureStatus(err, agentId);
        this.fail(failure.status, failure.message);
      });
    }, (err: unknown) => {
      if (err instanceof ExecUserError) {
        this.fail(STATUS_NOT_EXECUTABLE, err.message);
        return;
      }
      const failure = failureStatus(err, agentId);
      this.fail(failure.status, failure.message);
    });
  }

  /** Asks the agent to run it; once more if the agent restarted since its user was last learnt. */
  private async spawn(request: StartRequest, again = true): Promise<RemoteProcess> {
    const { policy, procs, identity } = this.options;
    const { ids, boot } = identity.forCaller(request.caller);
    await this.options.beforeCommand?.();
    try {
      return await procs.spawn({
        argv: request.argv, env: policy.environment(request.env), cwd: policy.slaveCwd(request.cwd), ...ids,
        pty: request.pty ? { rows: request.rows, cols: request.cols } : null,
      }, {
        stdout: (data, written) => this.output(FrameType.Stdout, data, written),
        stderr: (data, written) => this.output(FrameType.Stderr, data, written),
      }, boot);
    } catch (err) {
      if (!again || !(err instanceof SlaveError) || err.errnoName !== 'ESTALE') throw err;
      await identity.relearn();
      return this.spawn(request, false);
    }
  }

  private handle(proc: RemoteProcess, frame: Frame): void {
    switch (frame.type) {
      case FrameType.Stdin:
        // The socket waits while the writer is full.
        if (!this.stdin(proc).write(frame.payload)) this.socket.pause();
        return;
      case FrameType.StdinEof:
        this.stdin(proc).end();
        return;
      case FrameType.Signal: {
        const name = SIGNAL_NAMES.get(frame.payload[0] ?? 0);
        if (name) proc.signal(name);
        else this.log.debug({ signal: frame.payload[0] }, 'signal not forwarded');
        return;
      }
      case FrameType.Winsize: {
        try {
          const { rows, cols } = decodeWinsize(frame.payload);
          proc.resize(rows, cols);
        } catch (err) {
          this.log.debug({ err }, 'bad WINSIZE frame');
        }
        return;
      }
      default:
        this.fail(STATUS_PROTOCOL_ERROR, `unknown frame type 0x${frame.type.toString(16)} from the shim`);
    }
  }

  private stdin(proc: RemoteProcess): StdinWriter {
    this.stdinWriter ??= new StdinWriter(proc, {
      onDrain: () => this.socket.resume(),
      // The process closed its stdin: what the shim still sends is dropped, as a pipe would.
      onClosed: (err) => {
        this.log.debug({ err }, 'stdin not delivered');
        this.socket.resume();
      },
    });
    return this.stdinWriter;
  }

  /** slave output --> shim; credit returns once the socket has taken the last frame. */
  private output(type: number, data: Buffer, written: () => void): void {
    if (this.finished) {
      written();
      return;
    }
    const parts = [...outputFrames(type, data)];
    const last = parts.pop();
    if (!last) {
      written();
      return;
    }
    this.socket.cork(); // headers and data leave in one writev, the data uncopied
    for (const part of parts) this.socket.write(part);
    this.socket.write(last, () => written());
    this.socket.uncork();
  }

  private end(frame: Buffer, changeSeq?: number): void {
    if (this.finished) return;
    this.finished = true;
    const after = this.options.afterCommand;
    if (after === undefined) {
      this.socket.end(frame);
      return;
    }
    after(changeSeq)
      .catch((err: unknown) => this.log.warn({ err }, 'the slave mount did not apply the command\'s changes'))
      .finally(() => this.socket.end(frame));
  }

  private fail(status: number, message: string): void {
    if (this.finished) return;
    this.log.debug({ status, message }, 'bridged command failed');
    this.proc?.abandon();
    this.end(encodeError(status, message));
  }
}
