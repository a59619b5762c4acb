/**
 * Ops that add, remove or rename names. None follows a symlink in last place. Each checks what
 * the slave's kernel would check for the request's caller, and what it creates becomes the
 * caller's (caller-access.ts).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync, closeSync, constants, linkSync, lstatSync, openSync, readFileSync, renameSync, symlinkSync, unlinkSync,
  type Stats,
} from 'node:fs';
import { createServer } from 'node:net';
import { posix } from 'node:path';
import { promisify } from 'node:util';
import {
  MAY_READ, MAY_WRITE, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK, S_ISGID, S_ISUID, SlaveError,
  hasLoneSurrogates, owns,
  type Caller,
} from '../../protocol/index.js';
import type { CallerAccess } from '../caller-access.js';
import type { AgentContext, HandlerTable } from '../context.js';
import { lstatWire } from './stat-attr.js';
import { fsPath } from '../host-path.js';

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

/**
 * Node has no mkfifo(2) or mknod(2), so special files are made by coreutils, which every slave
 * has; existence is checked first so the caller gets EEXIST rather than a tool's message.
 */
async function makeSpecial(host: string, mode: number, rdev: number): Promise<void> {
  mustNotExist(host);
  if (hasLoneSurrogates(host)) {
    // A tool's arguments are UTF-8 strings: it makes the file under a plain temporary name,
    // reached through the directory's descriptor, which is then linked to the name's bytes.
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

let protectedHardlinks: boolean | undefined;

/** fs.protected_hardlinks of the slave (on by default on every current distribution). */
function hardlinksProtected(): boolean {
  if (protectedHardlinks === undefined) {
    try {
      protectedHardlinks = readFileSync('/proc/sys/fs/protected_hardlinks', 'utf8').trim() === '1';
    } catch {
      protectedHardlinks = false;
    }
  }
  return protectedHardlinks;
}

/**
 * may_linkat's rule under protected_hardlinks: a caller may link to a file it does not own only
 * if it is a regular file it may read and write that would give no privilege.
 */
function mayLinkTo(who: CallerAccess, st: Stats, host: string): boolean {
  const caller = who.caller as Caller;
  if (!who.checking || !hardlinksProtected() || owns(caller, st)) return true;
  if (!st.isFile() || (st.mode & S_ISUID) !== 0) return false;
  if ((st.mode & (S_ISGID | 0o010)) === (S_ISGID | 0o010)) return false;
  return who.allows(st, host, MAY_READ | MAY_WRITE);
}

async function mknod(ctx: AgentContext, who: CallerAccess, host: string, mode: number, rdev: number): Promise<void> {
  const type = mode & S_IFMT;
  if (type === S_IFREG || type === 0) {
    const { O_CREAT, O_EXCL, O_WRONLY, O_NOFOLLOW } = constants;
    closeSync(openSync(fsPath(host), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, mode & 0o7777));
  } else if (type === S_IFIFO) {
    await makeSpecial(host, mode, rdev);
    chmodSync(fsPath(host), mode & 0o7777);
  } else if (type === S_IFCHR || type === S_IFBLK) {
    // A master allowed files must not make itself a raw disk of the slave's: refused as in a
    // container without CAP_MKNOD unless the slave's operator allows it.
    if (!ctx.allowDeviceNodes) {
      throw new SlaveError('EPERM', 'this agent does not let masters create device nodes (start it with --allow-device-nodes)');
    }
    if (who.checking) throw new SlaveError('EPERM', 'only root may create device nodes');
    await makeSpecial(host, mode, rdev);
    chmodSync(fsPath(host), mode & 0o7777);
  } else if (type === S_IFSOCK) {
    await makeSocket(host);
    chmodSync(fsPath(host), mode & 0o7777);
  } else {
    throw new SlaveError(type === S_IFDIR ? 'EPERM' : 'EINVAL', `mknod cannot create a file of type ${type.toString(8)}`);
  }
}

export const nameOps: HandlerTable = {
  'fs.unlink': async ({ path }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    ctx.access(caller).removable(host, `unlink ${path}`);
    unlinkSync(fsPath(host));
    return {};
  },

  'fs.rename': async ({ from, to }, ctx, caller) => {
    const hostFrom = ctx.jail.resolve(from);
    const hostTo = ctx.jail.resolve(to);
    const who = ctx.access(caller);
    if (who.checking) {
      who.removable(hostFrom, `rename ${from}`);
      who.removable(hostTo, `rename to ${to}`);
      // A directory moved to another directory has its '..' rewritten: it must be writable.
      const moved = lstatSync(fsPath(hostFrom));
      if (moved.isDirectory() && posix.dirname(hostFrom) !== posix.dirname(hostTo)) who.inode(moved, hostFrom, MAY_WRITE, `rename ${from}`);
    }
    renameSync(fsPath(hostFrom), fsPath(hostTo));
    // A directory moved, or one replaced: what the jail verified under either name is elsewhere.
    ctx.jail.forgetPrefix(ctx.jail.toSlave(hostFrom));
    ctx.jail.forgetPrefix(ctx.jail.toSlave(hostTo));
    return {};
  },

  'fs.link': async ({ existing, path }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    const hostExisting = ctx.jail.resolve(existing);
    const who = ctx.access(caller);
    if (who.checking) {
      who.search(hostExisting, `link ${existing}`);
      who.parent(host, `link ${path}`);
      if (!mayLinkTo(who, lstatSync(fsPath(hostExisting)), hostExisting)) {
        throw new SlaveError('EPERM', `link ${existing}: another user's file (fs.protected_hardlinks)`);
      }
    }
    linkSync(fsPath(hostExisting), fsPath(host));
    return { attr: lstatWire(host) };
  },

  'fs.symlink': async ({ target, path }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    const who = ctx.access(caller);
    const dir = who.parent(host, `symlink ${path}`);
    symlinkSync(fsPath(target), fsPath(host));
    who.own(host, 0o777, dir);
    return { attr: lstatWire(host) };
  },

  'fs.mknod': async ({ path, mode, rdev }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    const who = ctx.access(caller);
    const dir = who.parent(host, `mknod ${path}`);
    await mknod(ctx, who, host, mode, rdev);
    who.own(host, mode, dir);
    return { attr: lstatWire(host) };
  },
};
