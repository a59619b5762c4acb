/**
 * The reference: sshfs over loopback to a throwaway sshd that listens on 127.0.0.1 only, with
 * keys, config and pid file in a temp dir. sshfs runs with its default caching.
 */
import { mkdir, writeFile, copyFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';
import { startDaemon, waitUntil } from './daemon.js';
import { mountedYet } from './mount-table.js';
import { runCommand, sh } from './run-command.js';
import { unmountOnCleanup, type Target } from './target.js';

const START_TIMEOUT_MS = 15_000;
/** sshfs keeps directory entries and attributes for dcache_timeout, 20 s by default. */
const SSHFS_DCACHE_MS = 21_000;

/** A port nobody listens on now; the kernel chooses it. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (typeof address === 'object' && address) resolve(address.port);
        else reject(new Error('the kernel gave no port'));
      });
    });
  });
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

export async function startSshfs(workDir: string, cleanup: Cleanup): Promise<Target> {
  const dir = join(workDir, 'sshd');
  const slavePath = join(workDir, 'sshfs-slave');
  const mountPath = join(workDir, 'sshfs-mnt');
  await Promise.all([mkdir(dir), mkdir(slavePath), mkdir(mountPath), mkdir('/run/sshd', { recursive: true })]);
  for (const key of ['host_key', 'client_key']) {
    await runCommand(`ssh-keygen -q -t ed25519 -N '' -f ${sh(join(dir, key))}`, { timeoutMs: 10_000 });
  }
  await copyFile(join(dir, 'client_key.pub'), join(dir, 'authorized_keys'));
  const port = await freeLoopbackPort();
  const config = join(dir, 'sshd_config');
  await writeFile(config, sshdConfig(dir, port));
  const sshd = startDaemon({
    label: 'sshd', command: '/usr/sbin/sshd', args: ['-D', '-e', '-f', config, '-p', String(port)],
    logPath: join(workDir, 'sshd.log'),
  }, cleanup);
  await waitUntil(sshd, `listening on 127.0.0.1:${port}`, START_TIMEOUT_MS, () => accepts(port));

  const sshfsLog = join(workDir, 'sshfs.log');
  const sshfs = startDaemon({
    label: 'sshfs', command: 'sshfs', logPath: sshfsLog,
    args: ['-f', '-o', [
      `IdentityFile=${join(dir, 'client_key')}`, 'StrictHostKeyChecking=no', 'UserKnownHostsFile=/dev/null',
      'BatchMode=yes', 'LogLevel=ERROR', `port=${port}`,
    ].join(','), `root@127.0.0.1:${slavePath}`, mountPath],
  }, cleanup);
  unmountOnCleanup(cleanup, mountPath);
  await waitUntil(sshfs, `mount on ${mountPath}`, START_TIMEOUT_MS, () => mountedYet(mountPath));
  return {
    name: 'sshfs', mountPath, slavePath, userspaceCacheMs: SSHFS_DCACHE_MS,
    logs: [{ label: 'sshfs', path: sshfsLog }],
  };
}
