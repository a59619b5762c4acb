/**
 * The inside half of `splitbrain shell`, run in the private mount and UTS namespaces that
 * shell-namespace.ts made: the sidecar (sidecar.ts) under a tmpfs of its own, then, in this
 * namespace only, the slave's root at --slave-at, each --map at its real path and the slave's
 * hostname; then the command, as the user who started `splitbrain shell`, with the bridge's
 * directories on its PATH as a test container has them (compose/containers.ts). When the
 * command ends everything is taken down and its status is returned.
 */
import { spawn, spawnSync } from 'node:child_process';
import { join, posix } from 'node:path';
import type { Logger } from 'pino';
import { exitStatusOf, STATUS_NOT_EXECUTABLE, STATUS_NOT_FOUND } from './exit-status.js';
import { MasterView } from './shell-view.js';
import { relaySignals, type ShellCaller } from './shell-namespace.js';
import { startSidecar, type SidecarOptions } from './sidecar.js';
import { systemCommand } from './system-command.js';

export interface ShellMap {
  slavePath: string;
  /** Where the command sees it (default: the same path). */
  target: string;
}

export interface ShellOptions extends Pick<SidecarOptions, 'natsUrl' | 'agentId' | 'mountOptions' | 'slaveWaitMs' | 'bridge' | 'pythonFallback' | 'mountDevices'> {
  /** The command and its arguments; empty: the user's $SHELL. */
  command: string[];
  maps: ShellMap[];
  /** Where the command sees the slave's whole root. */
  slaveAt: string;
  /** The namespace's directory, made (empty) by the outside half. */
  dir: string;
  caller: ShellCaller;
  log: Logger;
}

/** The sidecar or a path could not be set up: the message says which (exit 125, as `run`). */
export class ShellSetupError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ShellSetupError';
  }
}

export const SHELL_SETUP_FAILED = 125;

export async function runShell(options: ShellOptions): Promise<number> {
  const { dir, log } = options;
  const undo: (() => Promise<void>)[] = [];
  const undoAll = async () => {
    for (const step of undo.reverse()) await step().catch((err: unknown) => log.warn({ err }, 'shell cleanup step failed'));
  };
  try {
    // Nothing of ours is written to the master's disk, and the command (maybe not root) may
    // reach the bridge's socket, shims and Python hook.
    await systemCommand('mount', ['-t', 'tmpfs', '-o', 'mode=0755,size=16m', 'splitbrain-shell', dir]);
    undo.push(() => systemCommand('umount', ['-l', dir]));
    const sidecar = await startSidecar({
      natsUrl: options.natsUrl, agentId: options.agentId, dir, slaveSeenAt: options.slaveAt,
      mountOptions: options.mountOptions, slaveWaitMs: options.slaveWaitMs, maps: options.maps.map((m) => m.slavePath),
      mountDevices: options.mountDevices, bridge: options.bridge, pythonFallback: options.pythonFallback, log,
    });
    undo.push(() => sidecar.stop());
    await systemCommand('hostname', [sidecar.health.hostname]).catch((err: unknown) => log.warn({ err }, 'the slave\'s hostname not set'));
    const view = new MasterView(dir, undo);
    await view.bind(join(dir, 'slave'), options.slaveAt);
    for (const map of options.maps) await view.bind(join(dir, 'map', posix.normalize(map.slavePath)), map.target);
    return await startCommand(options, view.root).status;
  } catch (err) {
    if (err instanceof ShellSetupError) throw err;
    throw new ShellSetupError((err as Error).message, { cause: err });
  } finally {
    await undoAll();
  }
}

/**
 * The command, as the caller: with sudo, setpriv(1) takes it to the sudo user's ids and groups;
 * in a user namespace a nested one maps the caller's ids to themselves (in ours it is root).
 */
function startCommand(options: ShellOptions, root: string | undefined): { status: Promise<number> } {
  const { caller, dir } = options;
  const command = options.command.length > 0 ? options.command : [process.env.SHELL || '/bin/sh'];
  const env = commandEnv(process.env, dir, options.pythonFallback ?? false);
  // A new root (shell-view.ts) is entered last, in the working directory the caller had; a user
  // namespace cannot be made once chrooted, so the nested one is made by the same unshare.
  const newRoot = root === undefined ? [] : [`--root=${root}`, `--wd=${process.cwd()}`];
  let argv: string[];
  if (caller.userNamespace) {
    argv = ['unshare', '--user', `--map-user=${caller.uid}`, `--map-group=${caller.gid}`, ...newRoot, '--', ...command];
  } else if (caller.uid !== 0) {
    // sudo made HOME root's: the caller's own, as `sudo -u` would give it.
    const account = passwdEntry(caller.uid);
    if (account) Object.assign(env, { HOME: account.home, USER: account.name, LOGNAME: account.name });
    const setpriv = ['setpriv', `--reuid=${caller.uid}`, `--regid=${caller.gid}`, account ? '--init-groups' : '--clear-groups', '--', ...command];
    argv = newRoot.length > 0 ? ['unshare', ...newRoot, '--', ...setpriv] : setpriv;
  } else {
    argv = newRoot.length > 0 ? ['unshare', ...newRoot, '--', ...command] : command;
  }
  const [file = '', ...args] = argv;
  // cwd by path: a directory shadowed meanwhile (shell-view.ts) is then the shadow, as for any new lookup.
  const child = spawn(file, args, { stdio: 'inherit', env, cwd: process.cwd() });
  const unrelay = relaySignals(child);
  const status = new Promise<number>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      const notFound = err.code === 'ENOENT';
      process.stderr.write(`splitbrain shell: ${file}: ${notFound ? 'command not found' : err.message}\n`);
      resolve(notFound ? STATUS_NOT_FOUND : STATUS_NOT_EXECUTABLE);
    });
    child.once('exit', (code, signal) => resolve(exitStatusOf({ code, signal })));
  }).finally(unrelay);
  return { status };
}

/**
 * The caller's environment, with the bridge as a test container has it: named commands first on
 * PATH, the slave's others (--bridge-missing) last, the Python hook first on PYTHONPATH.
 */
export function commandEnv(callerEnv: NodeJS.ProcessEnv, dir: string, pythonFallback: boolean): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...callerEnv };
  for (const name of Object.keys(env)) if (name.startsWith('SPLITBRAIN_SHELL_')) delete env[name];
  env.PATH = [join(dir, 'bin'), callerEnv.PATH || '/usr/local/bin:/usr/bin:/bin', join(dir, 'fallback')].join(':');
  env.SPLITBRAIN_BRIDGE_SOCKET = join(dir, 'bridge.sock');
  if (pythonFallback) env.PYTHONPATH = [join(dir, 'python'), ...(callerEnv.PYTHONPATH ? [callerEnv.PYTHONPATH] : [])].join(':');
  return env;
}

/** The caller's account (name and home), if this machine has one for the uid. */
function passwdEntry(uid: number): { name: string; home: string } | undefined {
  const got = spawnSync('getent', ['passwd', String(uid)], { encoding: 'utf8', timeout: 10_000 });
  const fields = got.status === 0 ? got.stdout.trim().split(':') : [];
  return fields.length >= 7 && fields[0] && fields[5] ? { name: fields[0], home: fields[5] } : undefined;
}
