/**
 * ssh to the bench's throwaway sshd as the process bench's reference: a new connection per
 * command (key exchange and login every time), and one ControlMaster connection that every
 * command is multiplexed over. The master is the first connection, made untimed; it runs in the
 * foreground (`-M -N`) as a daemon of ours, so it is stopped by its PID like everything else.
 */
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';
import { startDaemon, waitUntil, type Daemon } from './daemon.js';
import { headZeros, type Route } from './exec-routes.js';
import { runArgv } from './run-command.js';
import { sshClientOptions, type Sshd } from './sshd.js';

const MASTER_TIMEOUT_MS = 15_000;

export interface SshRoutes {
  /** The ControlMaster route is missing when its master did not come up; `masterError` says why. */
  routes: Route[];
  masterError?: string;
  /** Stopped once the process bench is done. */
  daemons: Daemon[];
}

const HOST = 'root@127.0.0.1';

/** Options that ignore ~/.ssh and /etc/ssh (-F /dev/null) and reach the bench's sshd as root. */
function sshOptions(sshd: Sshd, extra: string[]): string[] {
  return ['-F', '/dev/null', '-p', String(sshd.port), ...[...sshClientOptions(sshd), ...extra].flatMap((o) => ['-o', o])];
}

function route(id: Route['id'], options: string[]): Route {
  const ssh = ['ssh', ...options, HOST];
  return { id, trueArgv: [...ssh, 'true'], env: process.env, stream: (bytes) => headZeros([...ssh, 'head'], bytes) };
}

export async function startSshRoutes(workDir: string, sshd: Sshd, cleanup: Cleanup): Promise<SshRoutes> {
  const direct = route('ssh', sshOptions(sshd, ['ControlMaster=no', 'ControlPath=none']));
  const controlPath = `ControlPath=${join(sshd.dir, 'control.sock')}`;
  // ControlPersist would keep a master that ssh forked into the background; ours stays in the
  // foreground instead, and the clients may only use it (ControlMaster=no), never become one.
  const master = startDaemon({
    label: 'ssh ControlMaster', command: 'ssh', logPath: join(workDir, 'ssh-master.log'),
    args: [...sshOptions(sshd, [controlPath]), '-M', '-N', HOST],
  }, cleanup);
  const check = ['ssh', ...sshOptions(sshd, [controlPath]), '-O', 'check', HOST];
  try {
    await waitUntil(master, 'control socket', MASTER_TIMEOUT_MS,
      () => runArgv(check, { timeoutMs: 5000 }).then(() => true, () => undefined));
  } catch (err) {
    await master.stop();
    return { routes: [direct], masterError: (err as Error).message, daemons: [] };
  }
  const multiplexed = route('ssh-cm', sshOptions(sshd, ['ControlMaster=no', controlPath]));
  return { routes: [direct, multiplexed], daemons: [master] };
}
