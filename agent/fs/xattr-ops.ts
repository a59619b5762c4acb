/**
 * Extended attributes: one handler each, with the caller checks the slave's kernel would make.
 * XATTR_CREATE and XATTR_REPLACE are checked here, just before the call: the attribute calls the
 * backend makes take no flags.
 */
import { MAY_READ, MAY_WRITE, S_ISVTX, SlaveError, owns, type Caller } from '../../protocol/index.js';
import type { FilesBackend } from '../backends/files-backend.js';
import type { CallerAccess } from '../caller-access.js';
import type { HandlerTable } from '../context.js';

const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

/**
 * xattr_permission's rules for a caller: user.* only on files and directories, with read or
 * write permission (and ownership on a sticky directory); trusted.* only for root, hidden from
 * others; security.* and system.* readable by anyone, set by root (and ACLs by the owner).
 */
function checkXattr(files: FilesBackend, who: CallerAccess, host: string, name: string, write: boolean, what: string): void {
  who.search(host, what);
  if (!who.checking) return;
  const caller = who.caller as Caller;
  const st = files.lstat(host);
  const refuse = (errno: 'EPERM' | 'ENODATA', why: string) => new SlaveError(errno, `${what}: ${why}`);
  if (name.startsWith('trusted.')) {
    throw write ? refuse('EPERM', 'trusted attributes are root\'s') : refuse('ENODATA', 'no such attribute');
  }
  if (name.startsWith('user.')) {
    if (!st.isFile() && !st.isDirectory()) {
      throw write ? refuse('EPERM', 'user attributes belong to files and directories') : refuse('ENODATA', 'no such attribute');
    }
    if (write && st.isDirectory() && (st.mode & S_ISVTX) !== 0 && !owns(caller, st)) {
      throw refuse('EPERM', 'only the owner sets attributes of a sticky directory');
    }
    who.inode(st, host, write ? MAY_WRITE : MAY_READ, what);
    return;
  }
  if (!write) return;
  if (name.startsWith('system.') && owns(caller, st)) return;
  throw refuse('EPERM', `only root may set ${name}`);
}

export const xattrOps: HandlerTable = {
  'fs.getxattr': async ({ path, name }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    checkXattr(ctx.backend.files, ctx.access(caller), host, name, false, `getxattr ${path}`);
    const value = ctx.backend.files.getxattr(host, name);
    if (value === null) throw new SlaveError('ENODATA', `no attribute ${name} on ${path}`);
    return { value };
  },

  'fs.setxattr': async ({ path, name, value, flags }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    checkXattr(ctx.backend.files, ctx.access(caller), host, name, true, `setxattr ${path}`);
    if (flags & (XATTR_CREATE | XATTR_REPLACE)) {
      const exists = ctx.backend.files.getxattr(host, name) !== null;
      if (flags & XATTR_CREATE && exists) throw new SlaveError('EEXIST', `attribute ${name} exists on ${path}`);
      if (flags & XATTR_REPLACE && !exists) throw new SlaveError('ENODATA', `no attribute ${name} on ${path}`);
    }
    ctx.backend.files.setxattr(host, name, value);
    return {};
  },

  'fs.listxattr': async ({ path }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    const who = ctx.access(caller);
    who.search(host, `listxattr ${path}`);
    const names = ctx.backend.files.listxattr(host);
    return { names: who.checking ? names.filter((n) => !n.startsWith('trusted.')) : names };
  },

  'fs.removexattr': async ({ path, name }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    checkXattr(ctx.backend.files, ctx.access(caller), host, name, true, `removexattr ${path}`);
    if (ctx.backend.files.getxattr(host, name) === null) throw new SlaveError('ENODATA', `no attribute ${name} on ${path}`);
    ctx.backend.files.removexattr(host, name);
    return {};
  },
};
