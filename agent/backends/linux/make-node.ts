/**
 * mknod(2) on Linux, which Node cannot call: regular files by open(2), FIFOs and device nodes by
 * coreutils, which every slave has, and Unix sockets by binding one.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants, linkSync, lstatSync, openSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { posix } from 'node:path';
import { promisify } from 'node:util';
import {
  S_IFBLK, S_IFCHR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK, SlaveError, hasLoneSurrogates,
} from '../../../protocol/index.js';
import { fsPath, isLongPath } from '../../host-path.js';

const run = promisify(execFile);

/**
 * EEXIST when `path` exists; its own errno when it cannot be looked up (ENAMETOOLONG, ENOTDIR,
 * ELOOP), which the tools below would only report as text.
 */
function mustNotExist(path: string): void {
  try {
    lstatSync(fsPath(path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  throw new SlaveError('EEXIST', `file exists: ${path}`);
}

/** Existence is checked first so the caller gets EEXIST rather than a tool's message. */
async function makeSpecial(host: string, mode: number, rdev: number): Promise<void> {
  mustNotExist(host);
  if (hasLoneSurrogates(host) || isLongPath(host)) {
    // A tool's arguments are UTF-8 strings, each at most PATH_MAX bytes as a path: it makes the
    // file under a plain temporary name, reached through the directory's descriptor, which is
    // then linked to the name's bytes (or the long path's: host-path.ts).
    const dir = posix.dirname(host);
    const temporary = `.splitbrain-node-${randomBytes(6).toString('hex')}`;
    const dirFd = openSync(fsPath(dir), constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await makeSpecial(`/proc/${process.pid}/fd/${dirFd}/${temporary}`, mode, rdev);
    } finally {
      closeSync(dirFd);
    }
    try {
      linkSync(fsPath(`${dir}/${temporary}`), fsPath(host));
    } finally {
      unlinkSync(fsPath(`${dir}/${temporary}`));
    }
    return;
  }
  const type = mode & S_IFMT;
  const major = Math.floor(rdev / 256) & 0xfff; // glibc's dev_t layout, as the kernel passes it
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  const [command, argv] = type === S_IFIFO
    ? ['mkfifo', [host]]
    : ['mknod', [host, type === S_IFCHR ? 'c' : 'b', String(major), String(minor)]];
  try {
    await run(command, argv);
  } catch (cause) {
    const message = String((cause as { stderr?: string }).stderr ?? cause).trim();
    const errno = /Permission denied/.test(message) ? 'EACCES'
      : /Operation not permitted/.test(message) ? 'EPERM'
        : /No such file/.test(message) ? 'ENOENT' : 'EIO';
    throw new SlaveError(errno, message, { cause });
  }
}

/**
 * A Unix socket inode at `host`, as bind(2) under the mount makes one. Node binds only to
 * listen, and removes the name when the server closes, so the socket is bound under a temporary
 * name and hard-linked to its place first. The name is reached through the directory's
 * descriptor: a socket path is limited to 108 bytes, a slave path is not.
 */
async function makeSocket(host: string): Promise<void> {
  mustNotExist(host);
  const dirFd = openSync(fsPath(posix.dirname(host)), constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    const temporary = `.splitbrain-socket-${randomBytes(6).toString('hex')}`;
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(`/proc/self/fd/${dirFd}/${temporary}`, () => resolve());
    });
    try {
      linkSync(fsPath(`${posix.dirname(host)}/${temporary}`), fsPath(host));
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  } finally {
    closeSync(dirFd);
  }
}

/** mkfifo, mknod and bind(2) give a new node modes of their own: the one asked for is set after. */
export async function makeNode(host: string, mode: number, rdev: number): Promise<void> {
  const type = mode & S_IFMT;
  if (type === S_IFREG || type === 0) {
    const { O_CREAT, O_EXCL, O_WRONLY, O_NOFOLLOW } = constants;
    closeSync(openSync(fsPath(host), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, mode & 0o7777));
  } else if (type === S_IFIFO || type === S_IFCHR || type === S_IFBLK) {
    await makeSpecial(host, mode, rdev);
    chmodSync(fsPath(host), mode & 0o7777);
  } else if (type === S_IFSOCK) {
    await makeSocket(host);
    chmodSync(fsPath(host), mode & 0o7777);
  } else {
    throw new SlaveError('EINVAL', `mknod cannot create a file of type ${type.toString(8)}`);
  }
}
