/**
 * The pipes a process's stdout and stderr go into, made by the agent (pipe2 in libc) rather
 * than by Node, so that they are read into one buffer used for every read: Node's own stdio
 * pipes allocate a fresh 64 KiB buffer per read, a GiB of them per GiB of output, and in a busy
 * agent V8 then ran a full garbage collection every few MiB (issue 22). A read's bytes are
 * handed over synchronously, and copied into the event being gathered (agent/proc/spawned-process.ts)
 * before any other read, of any pipe, can reuse the buffer. Where libc cannot be loaded, the
 * agent falls back to Node's pipes.
 *
 *   process --write(2)--> pipe --read(2) into the shared buffer--> onData(stream, bytes), copied there
 */
import { closeSync } from 'node:fs';
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import { libc } from './libc.js';
import type { OutputStream } from '../processes-backend.js';

const O_CLOEXEC = 0o2000000;
/** Most one read takes: a pipe holds 64 KiB unless enlarged, so this is never the limit. */
/** One read of an output pipe, at most (the budget's READ_SLACK allows for one past a window). */
export const OUTPUT_READ_BYTES = 256 * 1024;

/** Shared by every pipe of the agent: each read is consumed before the next one starts. */
let readBuffer: Buffer | undefined;

const F_SETPIPE_SZ = 1031;
/**
 * A stdout pipe holds this much (the kernel's default is 64 KiB): a streaming command's output
 * is read in reads of up to OUTPUT_READ_BYTES, four times fewer than 64 KiB ones (fewer system
 * calls and loop turns in the agent, fewer waits for the writer). A stalled reader's command
 * fills it before it blocks: kernel memory per process, besides what the agent keeps.
 */
const PIPE_BYTES = OUTPUT_READ_BYTES;
/**
 * Only a root agent enlarges them: an unprivileged user's pipes count against
 * /proc/sys/fs/pipe-user-pages-soft (64 MiB), past which every new pipe of that user, the test's
 * own included, is cut to two pages. Root is not counted.
 */
const ENLARGE = process.geteuid?.() === 0;

function pipe(enlarge: boolean): [number, number] | undefined {
  const lib = libc();
  if (lib === null) return undefined;
  const fds = [-1, -1];
  if (lib.pipe2(fds, O_CLOEXEC) !== 0) return undefined;
  // Best effort: past /proc/sys/fs/pipe-max-size the pipe keeps the kernel's default size.
  if (enlarge && ENLARGE) lib.fcntlValue(fds[0] as number, F_SETPIPE_SZ, PIPE_BYTES);
  return [fds[0] as number, fds[1] as number];
}

export class OutputPipes {
  private readonly sockets: Socket[] = [];
  private childEndsOpen = true;
  /** Resolves once both pipes are at their end (every writer closed them) or destroyed. */
  readonly ended: Promise<void>;
  private settle!: () => void;
  private open = 2;

  private constructor(private readonly stdout: [number, number], private readonly stderr: [number, number]) {
    this.ended = new Promise((resolve) => { this.settle = resolve; });
  }

  /** Two pipes, or undefined where the agent cannot make them (then Node's pipes serve). */
  static make(): OutputPipes | undefined {
    const stdout = pipe(true);
    if (stdout === undefined) return undefined;
    const stderr = pipe(false); // rarely a stream: the kernel's size
    if (stderr === undefined) {
      for (const fd of stdout) closeSync(fd);
      return undefined;
    }
    return new OutputPipes(stdout, stderr);
  }

  /** The write ends, for spawn's stdio: the child gets them as its fds 1 and 2. */
  get childFds(): [number, number] {
    return [this.stdout[1], this.stderr[1]];
  }

  /**
   * Once the child has its copies (after spawn): ours of the write ends are closed, so the
   * pipes end when the process and whatever it started close theirs, and reading starts.
   * `onData`'s bytes are only valid during the call.
   */
  start(onData: (stream: OutputStream, data: Buffer) => void, onError: (err: Error) => void): void {
    this.closeChildEnds();
    readBuffer ??= Buffer.allocUnsafeSlow(OUTPUT_READ_BYTES);
    const shared = readBuffer;
    for (const [stream, fds] of [['stdout', this.stdout], ['stderr', this.stderr]] as const) {
      // Node reads into `onread.buffer` instead of a buffer of its own per read (its types list
      // the option for connect() only; the constructor takes it too).
      const options: SocketConstructorOpts & { onread: OnReadOpts } = {
        fd: fds[0], readable: true, writable: false,
        onread: {
          buffer: shared,
          callback: (n, buf) => {
            onData(stream, Buffer.from(buf.buffer, buf.byteOffset, n));
            return true; // pausing is the caller's, through pause()
          },
        },
      };
      const socket = new Socket(options);
      socket.on('error', onError);
      socket.once('close', () => {
        if (--this.open === 0) this.settle();
      });
      this.sockets.push(socket);
    }
  }

  pause(): void {
    for (const socket of this.sockets) socket.pause();
  }

  resume(): void {
    for (const socket of this.sockets) socket.resume();
  }

  /** Closes the read ends: a process still writing gets SIGPIPE, as when an ssh client drops. */
  destroy(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  /** The spawn failed: every descriptor goes. */
  close(): void {
    this.closeChildEnds();
    if (this.sockets.length > 0) return this.destroy();
    closeSync(this.stdout[0]);
    closeSync(this.stderr[0]);
    this.settle();
  }

  private closeChildEnds(): void {
    if (!this.childEndsOpen) return;
    this.childEndsOpen = false;
    closeSync(this.stdout[1]);
    closeSync(this.stderr[1]);
  }
}
