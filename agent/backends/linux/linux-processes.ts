/**
 * The processes service on Linux: a command found as execvp(3) finds it (command-path.ts), run
 * on pipes of the agent's own (output-pipes.ts) or on a pseudo-terminal (node-pty), in a process
 * group of its own so a hang-up reaches what it started. Another user is taken by setpriv(1),
 * another machine's namespaces entered by nsenter(1) (namespaces.ts): util-linux tools on the
 * agent's side, which set what they must and exec the command (no fork: the pid signalled stays
 * the command's).
 */
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { Readable } from 'node:stream';
import type { IPty } from 'node-pty';
import { SlaveError, hasLoneSurrogates } from '../../../protocol/index.js';
import { fsPath, isLongPath } from '../../host-path.js';
import type {
  Command, Identity, OutputStream, ProcessEvents, ProcessesBackend, RunningProcess, StartSpec,
} from '../processes-backend.js';
import { DEFAULT_PATH, resolveCommand } from './command-path.js';
import { checkCanEnter, enterArgv, namespaceHostname } from './namespaces.js';
import { OUTPUT_READ_BYTES, OutputPipes } from './output-pipes.js';

/** sshd gives sessions this umask; the agent itself runs with 0 (see agent.ts). */
const CHILD_UMASK = 0o022;

/** Spawns with the umask a login session has: the fork happens inside the synchronous call. */
function withChildUmask<T>(start: () => T): T {
  const previous = process.umask(CHILD_UMASK);
  try {
    return start();
  } finally {
    process.umask(previous);
  }
}

/** One of the agent's own tools (util-linux), looked up on the agent's side, not the export's. */
function agentTool(name: string, why: string): string {
  try {
    return resolveCommand(name, DEFAULT_PATH, '/');
  } catch (err) {
    throw new SlaveError('ENOENT', `${name} (util-linux) is not on the agent's PATH; it is needed ${why}`, { cause: err });
  }
}

/**
 * setpriv's argv that takes `identity` and execs `inner`. Node's and node-pty's own uid/gid
 * options cannot do groups: libuv calls setgroups(0) and drops them all.
 */
export function setprivArgv(identity: Identity, inner: string[], options: { uid: boolean }): string[] {
  const groups = identity.groups ?? [];
  return [
    'setpriv',
    ...(options.uid && identity.uid !== undefined ? [`--reuid=${identity.uid}`] : []),
    ...(identity.gid === undefined ? [] : [`--regid=${identity.gid}`]),
    groups.length > 0 ? `--groups=${groups.join(',')}` : '--clear-groups',
    '--', ...inner,
  ];
}

function signalName(num: number): string {
  for (const [name, value] of Object.entries(constants.signals)) if (value === num) return name;
  return `SIG${num}`;
}

/** What the agent does to a process's output: stop and start reading it, close it. */
interface OutputControl {
  pause(): void;
  resume(): void;
  destroy(): void;
}

/** Node's own stdio pipes, where the agent could not make its own. */
function nodePipes(child: ChildProcess, events: ProcessEvents): OutputControl {
  const streams = [child.stdout, child.stderr];
  for (const [stream, source] of [['stdout', child.stdout], ['stderr', child.stderr]] as const) {
    (source as Readable).on('data', (chunk: Buffer) => events.output(stream, chunk));
  }
  child.once('close', (code, signal) => events.exit(code, signal));
  return {
    pause: () => { for (const s of streams) s?.pause(); },
    resume: () => { for (const s of streams) s?.resume(); },
    destroy: () => { for (const s of streams) s?.destroy(); },
  };
}

function signalGroup(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(-pid, name);
  } catch {
    // The group is gone already.
  }
}

/**
 * The working directory as spawn takes it (a string). One deeper than PATH_MAX is named through a
 * directory's descriptor (host-path.ts): the child still holds it when it changes directory, before
 * its exec closes it, so a bridged command runs where the program was, however deep.
 */
function spawnCwd(cwd: string): string {
  return isLongPath(cwd) && !hasLoneSurrogates(cwd) ? fsPath(cwd).toString() : cwd;
}

async function startOnTerminal(spec: StartSpec, events: ProcessEvents): Promise<RunningProcess> {
  // Loaded at the first terminal asked for: most agents never run one, and an idle agent
  // need not map node-pty's native code (docs/performance.md, "Agent memory").
  const { spawn: spawnPty } = await import('node-pty');
  const pty: IPty = withChildUmask(() => spawnPty(spec.file, spec.argv.slice(1), {
    name: spec.env.TERM ?? 'xterm', cols: spec.pty?.cols || 80, rows: spec.pty?.rows || 24,
    cwd: spawnCwd(spec.cwd), env: spec.env, encoding: null,
  }));
  pty.onData((data: Buffer | string) => events.output('stdout', typeof data === 'string' ? Buffer.from(data) : data));
  pty.onExit(({ exitCode, signal }) => events.exit(signal ? null : exitCode, signal ? signalName(signal) : null));
  return {
    pid: pty.pid,
    terminal: true,
    async writeStdin(data, eof) {
      if (data.length > 0) pty.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      if (eof) pty.write('\x04'); // what a terminal sends for end of input
    },
    signal: (name) => pty.kill(name),
    signalGroup: (name) => signalGroup(pty.pid, name),
    resize: (rows, cols) => pty.resize(cols || 80, rows || 24),
    pauseOutput: () => pty.pause(),
    resumeOutput: () => pty.resume(),
    // A terminal's output ends with the hang-up's signals, not by closing it under the process.
    closeOutput: () => undefined,
  };
}

async function startOnPipes(spec: StartSpec, events: ProcessEvents): Promise<RunningProcess> {
  // Output pipes of the agent's own, read without a buffer per read (output-pipes.ts); Node's where it cannot make them.
  const pipes = OutputPipes.make();
  let child: ChildProcess;
  try {
    child = withChildUmask(() => spawnChild(spec.file, spec.argv.slice(1), {
      argv0: spec.argv[0], cwd: spawnCwd(spec.cwd), env: spec.env,
      stdio: ['pipe', pipes?.childFds[0] ?? 'pipe', pipes?.childFds[1] ?? 'pipe'],
      // Its own process group, so a hang-up reaches what it started too.
      detached: true,
    }));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(err));
    });
  } catch (err) {
    pipes?.close();
    throw err;
  }
  const pid = child.pid as number;
  // The process may close its stdin early: a later write then answers EPIPE, no crash.
  child.stdin?.on('error', (err) => events.noted(err, 'stdin closed by the process'));
  let output: OutputControl;
  if (pipes) {
    pipes.start((stream: OutputStream, data) => events.output(stream, data), (err) => events.noted(err, 'output pipe failed'));
    // The exit follows the output: once every writer (a background child too) closed the pipes.
    child.once('exit', (code, signal) => void pipes.ended.then(() => events.exit(code, signal)));
    output = pipes;
  } else {
    output = nodePipes(child, events);
  }
  return {
    pid,
    terminal: false,
    async writeStdin(data, eof) {
      const stdin = child.stdin;
      if (!stdin || stdin.destroyed || stdin.writableEnded) {
        // End of input for a process that closed its stdin (or exited) is delivered: closing a
        // pipe nobody reads is no error; only data can be refused (as write(2) gives EPIPE).
        if (data.length === 0) return;
        throw new SlaveError('EPIPE', 'the process closed its stdin');
      }
      if (data.length > 0) {
        await new Promise<void>((resolve, reject) => {
          stdin.write(data, (err) => (err ? reject(new SlaveError('EPIPE', 'the process closed its stdin', { cause: err })) : resolve()));
        });
      }
      if (eof) stdin.end();
    },
    signal: (name) => { child.kill(name); },
    signalGroup: (name) => signalGroup(pid, name),
    resize: () => { throw new SlaveError('ENOTTY', 'the process has no terminal'); },
    pauseOutput: () => output.pause(),
    resumeOutput: () => output.resume(),
    closeOutput: () => output.destroy(),
  };
}

export function linuxProcesses(): ProcessesBackend {
  return {
    outputReadBytes: OUTPUT_READ_BYTES,
    defaultPath: DEFAULT_PATH,
    findCommand: resolveCommand,
    runAs(identity: Identity, inner: Command, options: { uid: boolean }): Command {
      const file = agentTool('setpriv', 'to run commands as another user');
      return { file, argv: setprivArgv(identity, [inner.file, ...inner.argv.slice(1)], options) };
    },
    checkCanEnter,
    namespaceHostname,
    enterNamespaces(pid, file, argv, cwd, uid) {
      return { file: agentTool('nsenter', 'to run commands in the host\'s namespaces'), argv: enterArgv(pid, file, argv, cwd, uid) };
    },
    start: (spec, events) => (spec.pty ? startOnTerminal(spec, events) : startOnPipes(spec, events)),
  };
}
