/**
 * The outside half of `splitbrain shell`: it starts the command's private world and waits for it.
 *
 * Node cannot move itself into a new mount namespace (unshare(2) moves only the calling thread,
 * and Node has several), so `splitbrain shell` runs itself again under util-linux's `unshare`
 * (which execs, so no process sits between): as root a new mount and UTS namespace; without
 * root also a user namespace where it is root, which lets it mount FUSE, devpts and binds where
 * the kernel allows that (Linux 4.18+). The inside half is shell.ts.
 *
 * What the namespace holds dies with it: mounts made there are nobody else's. This half stays
 * outside to make sure of it: a process the inside half left in the namespace (it was killed
 * before it could stop its device mount) is ended, by the namespace it is in, and the empty
 * directory the inside mounted its tmpfs on is removed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { constants, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { exitStatusOf } from './exit-status.js';

/** Set by the outside half for the inside one: who the command runs as, and its directory. */
export const SHELL_CALLER_ENV = 'SPLITBRAIN_SHELL_CALLER';
export const SHELL_DIR_ENV = 'SPLITBRAIN_SHELL_DIR';

/** `splitbrain shell` could not make its namespace: what is missing, said plainly (exit 1). */
export class ShellNamespaceError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ShellNamespaceError';
  }
}

/** Who started `splitbrain shell`: with sudo, the user sudo was run by, not root. */
export interface ShellCaller {
  uid: number;
  gid: number;
  /** The command runs in a user namespace of its own, where these ids are mapped to themselves. */
  userNamespace: boolean;
}

export function shellCaller(env: NodeJS.ProcessEnv = process.env): ShellCaller {
  const euid = process.geteuid?.() ?? 0;
  if (euid !== 0) return { uid: euid, gid: process.getegid?.() ?? euid, userNamespace: true };
  const uid = Number(env.SUDO_UID);
  const gid = Number(env.SUDO_GID);
  if (env.SUDO_UID && Number.isInteger(uid) && uid >= 0 && env.SUDO_GID && Number.isInteger(gid) && gid >= 0) {
    return { uid, gid, userNamespace: false };
  }
  return { uid: 0, gid: process.getegid?.() ?? 0, userNamespace: false };
}

export function formatCaller(caller: ShellCaller): string {
  return `${caller.uid}:${caller.gid}:${caller.userNamespace ? 'userns' : 'root'}`;
}

export function parseCaller(value: string): ShellCaller {
  const m = /^(\d+):(\d+):(userns|root)$/.exec(value);
  if (!m) throw new Error(`${SHELL_CALLER_ENV}=${value}: not set by splitbrain shell`);
  return { uid: Number(m[1]), gid: Number(m[2]), userNamespace: m[3] === 'userns' };
}

/** The unshare(1) flags of the command's namespaces. */
function unshareFlags(caller: ShellCaller): string[] {
  const mine = ['--mount', '--uts', '--propagation', 'private'];
  return caller.userNamespace ? ['--user', '--map-root-user', ...mine] : mine;
}

/** Runs `unshare ARGS true`: undefined when the namespaces could be made, else what unshare said. */
function unshareRefusal(args: string[]): string | undefined {
  const probe = spawnSync('unshare', [...args, 'true'], { encoding: 'utf8', timeout: 10_000 });
  if (probe.error) throw new ShellNamespaceError(`cannot run unshare (util-linux): ${probe.error.message}`, { cause: probe.error });
  return probe.status === 0 ? undefined : probe.stderr.trim() || `unshare exited ${probe.status}`;
}

/** Without root: what the kernel and this machine must allow, checked before anything starts. */
async function checkUnprivileged(): Promise<void> {
  const refused = unshareRefusal(['--user', '--map-root-user', '--mount']);
  if (refused !== undefined) {
    throw new ShellNamespaceError(
      `the kernel refuses this user a user namespace (${refused}): `
      + 'run splitbrain shell as root (sudo), or allow unprivileged user namespaces '
      + '(kernel.unprivileged_userns_clone=1 where that sysctl exists, user.max_user_namespaces > 0)');
  }
  await access('/dev/fuse', constants.R_OK | constants.W_OK).catch((err: unknown) => {
    throw new ShellNamespaceError(
      `without root, FUSE needs /dev/fuse readable and writable by you (${(err as Error).message}): `
      + 'run splitbrain shell as root (sudo), or give /dev/fuse mode 0666 as most distributions do', { cause: err });
  });
}

/** As root: a container without CAP_SYS_ADMIN (or a seccomp filter) refuses namespaces too. */
function checkPrivileged(): void {
  const refused = unshareRefusal(['--mount', '--uts', '--propagation', 'private']);
  if (refused !== undefined) {
    throw new ShellNamespaceError(
      `cannot make a mount namespace (${refused}): splitbrain shell needs `
      + 'CAP_SYS_ADMIN (in a container: --cap-add SYS_ADMIN, or --privileged)');
  }
}

function mountNamespaceOf(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** The processes left in the mount namespace `ns` (ours: nobody else can enter it). */
function processesIn(ns: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    if (mountNamespaceOf(Number(name)) === ns) pids.push(Number(name));
  }
  return pids;
}

/**
 * Runs `splitbrain <argv>` (the shell command's own arguments) inside new namespaces and returns
 * its exit status, which is the command's.
 */
export async function runInShellNamespace(argv: string[], nodeArgs: string[]): Promise<number> {
  const caller = shellCaller();
  if (caller.userNamespace) await checkUnprivileged();
  else checkPrivileged();
  const dir = await mkdtemp(join(tmpdir(), 'splitbrain-shell-'));
  const child = spawn('unshare', [...unshareFlags(caller), '--', process.execPath, ...nodeArgs, process.argv[1] ?? '', ...argv], {
    stdio: 'inherit',
    env: { ...process.env, [SHELL_CALLER_ENV]: formatCaller(caller), [SHELL_DIR_ENV]: dir },
  });
  const unrelay = relaySignals(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let namespace: string | undefined;
  const own = mountNamespaceOf('self');
  const watching = (async () => {
    // unshare execs Node once the namespaces are made: the child's pid is then in them.
    const pid = child.pid;
    for (let i = 0; i < 500 && pid !== undefined && child.exitCode === null && child.signalCode === null; i++) {
      const ns = mountNamespaceOf(pid);
      if (ns !== undefined && ns !== own) {
        namespace = ns;
        return;
      }
      await sleep(10);
    }
  })();
  try {
    const { code, signal } = await exited.catch((err: Error) => {
      throw new ShellNamespaceError(`cannot run unshare (util-linux): ${err.message}`, { cause: err });
    });
    return exitStatusOf({ code, signal });
  } finally {
    await watching;
    unrelay();
    if (namespace !== undefined) await endLeftovers(namespace);
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Whether this process is in its terminal's foreground process group: a Ctrl-C or Ctrl-\ typed
 * there reaches every process of the group, the command included, and must not be passed on
 * a second time. /proc/PID/stat: pgrp and tpgid are the 3rd and 6th fields after the name.
 */
function inTerminalForeground(): boolean {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[2] !== undefined && fields[2] === fields[5];
  } catch {
    return false;
  }
}

/**
 * Passes on to `child` the signals sent to this process (`splitbrain shell`, then its inside
 * half, then the command), as sudo does: SIGTERM and SIGHUP always; SIGINT and SIGQUIT unless
 * they came from the terminal, which gave them to the command itself. Returns the undoing.
 */
export function relaySignals(child: ChildProcess): () => void {
  const pass = (signal: NodeJS.Signals) => { child.kill(signal); };
  const interrupt = (signal: NodeJS.Signals) => { if (!inTerminalForeground()) child.kill(signal); };
  const handlers = [
    ['SIGTERM', pass], ['SIGHUP', pass], ['SIGINT', interrupt], ['SIGQUIT', interrupt],
  ] as const;
  for (const [signal, handler] of handlers) process.on(signal, handler);
  return () => { for (const [signal, handler] of handlers) process.off(signal, handler); };
}

/** Ends what is still in the namespace: SIGTERM, then SIGKILL after 5 s. */
async function endLeftovers(ns: string): Promise<void> {
  let left = processesIn(ns);
  if (left.length === 0) return;
  for (const pid of left) killQuietly(pid, 'SIGTERM');
  for (let i = 0; i < 100 && left.length > 0; i++) {
    await sleep(50);
    left = processesIn(ns);
  }
  for (const pid of left) killQuietly(pid, 'SIGKILL');
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}
