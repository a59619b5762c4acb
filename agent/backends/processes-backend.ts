/**
 * What the processes service (agent/proc/) asks of the slave's operating system: finding a
 * command as the slave's execvp would, wrapping it to run as another user or in another
 * machine's namespaces, starting it on pipes or a terminal, and the few things done to it once
 * it runs. The exec policy, identities allowed, leases, credit windows and the output budget
 * stay in agent/proc/; the system calls are here. One implementation per platform
 * (linux/linux-processes.ts).
 */
export type OutputStream = 'stdout' | 'stderr';

/** Who a process runs as: the uid, gid and exactly these supplementary groups (none if absent). */
export interface Identity {
  uid?: number;
  gid?: number;
  groups?: number[];
}

/** An executable and the argv it gets; argv[0] is what the process sees as its name. */
export interface Command {
  file: string;
  argv: string[];
}

export interface StartSpec extends Command {
  env: Record<string, string>;
  /** Host path. */
  cwd: string;
  /** A terminal of this size, or pipes. */
  pty: { rows: number; cols: number } | null;
}

/** What a running process reports; `output`'s bytes are valid only during the call. */
export interface ProcessEvents {
  output(stream: OutputStream, data: Buffer): void;
  /** Once, after the last output (a background child holding the pipes delays it). */
  exit(code: number | null, signal: string | null): void;
  /** Something worth a debug line that the process survives (it closed its stdin early, a pipe failed). */
  noted(err: Error, what: string): void;
}

export interface RunningProcess {
  readonly pid: number;
  /** On a terminal: stdout carries both streams, and it can be resized. */
  readonly terminal: boolean;
  /** EPIPE (a SlaveError) once the process closed its stdin; `eof` ends its input. */
  writeStdin(data: Uint8Array, eof: boolean): Promise<void>;
  signal(name: NodeJS.Signals): void;
  /** To the process group: what it started too. Nothing if the group is gone. */
  signalGroup(name: NodeJS.Signals): void;
  resize(rows: number, cols: number): void;
  /** Stops and starts reading the output: the process blocks once its pipe or terminal is full. */
  pauseOutput(): void;
  resumeOutput(): void;
  /** Closes the output's read end: a process still writing gets SIGPIPE, as when an ssh client drops. */
  closeOutput(): void;
}

export interface ProcessesBackend {
  /** The most one read of output delivers: what may arrive past a full window. */
  readonly outputReadBytes: number;
  /** The command search path a session gets when the slave's environment has none (execvp's default). */
  readonly defaultPath: string;
  /**
   * The path of `command` (a name looked up on `searchPath`, or a path relative to `cwd`), as
   * execvp(3) would find it: ENOENT or EACCES (SlaveError) as the slave's shell would say.
   * With `hostPath`, paths are the slave's and checked where `hostPath` puts them; the slave's
   * path is returned.
   */
  findCommand(command: string, searchPath: string, cwd: string, hostPath?: (slavePath: string) => string): string;
  /**
   * `inner` run as `identity`, which the service allowed. With `uid: false` the uid is left to
   * `inner` (enterNamespaces takes it last, after entering, which needs root).
   */
  runAs(identity: Identity, inner: Command, options: { uid: boolean }): Command;
  /** Fails with what to change when the agent cannot enter process `pid`'s namespaces. */
  checkCanEnter(pid: number): void;
  /** The hostname of process `pid`'s machine (its UTS namespace). */
  namespaceHostname(pid: number): string;
  /** `file` (a slave path) run as `argv` in process `pid`'s namespaces, in slave directory `cwd`, as `uid`. */
  enterNamespaces(pid: number, file: string, argv: string[], cwd: string, uid?: number): Command;
  /**
   * Starts the process in a process group of its own, with the umask a login session has;
   * resolves once it runs, rejects with the spawn's errno.
   */
  start(spec: StartSpec, events: ProcessEvents): Promise<RunningProcess>;
}
