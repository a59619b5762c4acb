/**
 * A throwaway sshd that listens on 127.0.0.1 only, with its keys, config and pid file in a temp
 * dir, and the ssh client options that reach it as root with the bench's own key. Shared by the
 * sshfs target and the ssh rows of the process bench.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';
import { startDaemon, waitUntil, type Daemon } from './daemon.js';
import { freePort } from './free-port.js';
import { runCommand, sh } from './run-command.js';

const START_TIMEOUT_MS = 15_000;

export interface Sshd {
  readonly daemon: Daemon;
  readonly port: number;
  /** The client's private key; its public half is the only authorized key. */
  readonly clientKey: string;
  /** Where its keys and config live: a place for the ssh control socket too. */
  readonly dir: string;
}

function accepts(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(undefined));
  });
}

function sshdConfig(dir: string, port: number): string {
  return [
    'ListenAddress 127.0.0.1',
    `Port ${port}`,
    `HostKey ${join(dir, 'host_key')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PermitRootLogin yes',
    'StrictModes no',
    'UsePAM no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'Subsystem sftp /usr/lib/openssh/sftp-server',
    'LogLevel ERROR',
    '',
  ].join('\n');
}

export async function startSshd(workDir: string, cleanup: Cleanup): Promise<Sshd> {
  const dir = join(workDir, 'sshd');
  await Promise.all([mkdir(dir), mkdir('/run/sshd', { recursive: true })]);
  for (const key of ['host_key', 'client_key']) {
    await runCommand(`ssh-keygen -q -t ed25519 -N '' -f ${sh(join(dir, key))}`, { timeoutMs: 10_000 });
  }
  await copyFile(join(dir, 'client_key.pub'), join(dir, 'authorized_keys'));
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  await writeFile(config, sshdConfig(dir, port));
  const daemon = startDaemon({
    label: 'sshd', command: '/usr/sbin/sshd', args: ['-D', '-e', '-f', config, '-p', String(port)],
    logPath: join(workDir, 'sshd.log'),
  }, cleanup);
  await waitUntil(daemon, `listening on 127.0.0.1:${port}`, START_TIMEOUT_MS, () => accepts(port));
  return { daemon, port, clientKey: join(dir, 'client_key'), dir };
}

/**
 * Client options (`key=value`, for ssh's `-o` and sshfs's) that log in with the bench's key only,
 * with no host key prompt or record and no password prompt. The port goes separately: ssh takes
 * `-p`, sshfs `port=`.
 */
export function sshClientOptions(sshd: Sshd): string[] {
  return [
    `IdentityFile=${sshd.clientKey}`, 'IdentitiesOnly=yes', 'StrictHostKeyChecking=no',
    'UserKnownHostsFile=/dev/null', 'BatchMode=yes', 'LogLevel=ERROR',
  ];
}
