/**
 * An agent in a container serving its host (compose/slave.yml): it shares the host's PID
 * namespace and has the host's / bind-mounted as its export root, so files and signals are the
 * host's already. Processes must also run in the host's mount namespace (the host's binaries,
 * libraries and mounts, and a `mount` they do lands on the host), and in its UTS, IPC, network
 * and cgroup namespaces: nsenter(1) enters them and execs the command (no fork, so the pid we
 * signal is the command's). Paths are then the slave's own, not the export root's.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

const NAMESPACES = ['mnt', 'uts', 'ipc', 'net', 'cgroup'] as const;
const FLAGS: Record<(typeof NAMESPACES)[number], string> = {
  mnt: '--mount', uts: '--uts', ipc: '--ipc', net: '--net', cgroup: '--cgroup',
};

/** Fails at startup, with what to change, when the agent cannot enter `pid`'s namespaces. */
export function checkCanEnter(pid: number): void {
  let theirs: string;
  try {
    theirs = readlinkSync(`/proc/${pid}/ns/pid`);
  } catch (err) {
    throw new Error(`--enter-namespaces ${pid}: cannot see that process (${(err as Error).message}); `
      + 'run the agent in the host\'s PID namespace (compose: pid: host) as root', { cause: err });
  }
  if (theirs !== readlinkSync('/proc/self/ns/pid')) {
    throw new Error(`--enter-namespaces ${pid}: process ${pid} is in another PID namespace; the agent must share it `
      + '(compose: pid: host), or its signals would reach the wrong processes');
  }
}

/**
 * The slave's hostname: ours when we share `pid`'s UTS namespace (compose: uts: host), else the
 * one its /etc/hostname names (the kernel tells a hostname only to its own namespace).
 */
export function namespaceHostname(pid: number): string {
  if (readlinkSync(`/proc/${pid}/ns/uts`) === readlinkSync('/proc/self/ns/uts')) return hostname();
  try {
    return readFileSync(`/proc/${pid}/root/etc/hostname`, 'utf8').trim() || hostname();
  } catch {
    return hostname();
  }
}

/**
 * nsenter's argv to run `file` (a slave path) as `argv` in `pid`'s namespaces, in `cwd`, taking
 * `uid` last. Only the uid: nsenter's --setgid drops every supplementary group, so the gid and
 * groups are set before it (identity.ts), while it is still root and can enter namespaces.
 */
export function enterArgv(pid: number, file: string, argv: string[], cwd: string, uid?: number): string[] {
  return [
    // nsenter opens --wd before it enters: through /proc/<pid>/root the directory is the one of
    // the target's mount namespace, so the command's getcwd() works there.
    'nsenter', `--target=${pid}`, ...NAMESPACES.map((ns) => FLAGS[ns]), `--wd=/proc/${pid}/root${cwd}`,
    ...(uid === undefined ? [] : [`--setuid=${uid}`]),
    '--', file, ...argv.slice(1),
  ];
}
