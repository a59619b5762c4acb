/**
 * Extended attributes: the only importer of @napi-rs/xattr (Node has no xattr calls). That
 * library reports a missing attribute, and some failures, as null rather than an error, and
 * other errors as "(os error N)" messages: both are turned into the errno a program expects.
 */
import { closeSync, constants, lstatSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { MAY_READ, MAY_WRITE, S_ISVTX, SlaveError, errnoName, errnoOf, hasLoneSurrogates, nameToBytes, owns, type Caller } from '../../protocol/index.js';
import type { CallerAccess } from '../caller-access.js';
import type { HandlerTable } from '../context.js';
import { fsPath } from '../host-path.js';

type XattrLibrary = typeof import('@napi-rs/xattr');
let library: XattrLibrary | undefined;

/**
 * The native library, loaded at the first attribute a request needs: an idle agent, and one
 * whose masters never ask, does not map it (docs/performance.md, "Agent memory").
 */
function xattr(): XattrLibrary {
  library ??= createRequire(import.meta.url)('@napi-rs/xattr') as XattrLibrary;
  return library;
}

/** open(2)'s O_PATH on Linux (Node does not export it): a handle to name a file by, not to read. */
const O_PATH = 0o10000000;

/**
 * Runs `work` with a path the xattr library can take: it takes UTF-8 strings only, so a name
 * that is not UTF-8 is reached through a descriptor of it, as /proc/self/fd/N.
 */
function withXattrPath<T>(host: string, work: (path: string) => T): T {
  if (!hasLoneSurrogates(host)) return work(host);
  const fd = openSync(nameToBytes(host), O_PATH | constants.O_NOFOLLOW);
  try {
    return work(`/proc/self/fd/${fd}`);
  } finally {
    closeSync(fd);
  }
}

const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

function osError(err: unknown, what: string): SlaveError {
  const message = (err as Error).message ?? String(err);
  const errno = /os error (\d+)/.exec(message);
  return new SlaveError(errno ? errnoName(Number(errno[1])) : 'EIO', `${what}: ${message}`, { cause: err });
}

function call<T>(what: string, work: () => T): T {
  try {
    return work();
  } catch (err) {
    if (errnoOf(err) !== undefined) throw err; // ours, or Node's (a name's bytes, its descriptor)
    throw osError(err, what);
  }
}

/**
 * The POSIX access ACL of `host` (as the kernel stores it), or null: none, or a filesystem
 * without ACLs. Caller checks (caller-access.ts) judge by it as the slave's kernel would.
 */
export function accessAcl(host: string): Buffer | null {
  try {
    return withXattrPath(host, (p) => xattr().getAttributeSync(p, 'system.posix_acl_access'));
  } catch {
    return null;
  }
}

/** The attribute's value, or null when the file (which must exist) has no such attribute. */
function valueOf(host: string, name: string): Buffer | null {
  const value = call(`getxattr ${name}`, () => withXattrPath(host, (p) => xattr().getAttributeSync(p, name)));
  if (value === null) lstatSync(fsPath(host)); // a missing file is ENOENT, not "no such attribute"
  return value;
}

/**
 * xattr_permission's rules for a caller: user.* only on files and directories, with read or
 * write permission (and ownership on a sticky directory); trusted.* only for root, hidden from
 * others; security.* and system.* readable by anyone, set by root (and ACLs by the owner).
 */
function checkXattr(who: CallerAccess, host: string, name: string, write: boolean, what: string): void {
  who.search(host, what);
  if (!who.checking) return;
  const caller = who.caller as Caller;
  const st = lstatSync(fsPath(host));
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
    checkXattr(ctx.access(caller), host, name, false, `getxattr ${path}`);
    const value = valueOf(host, name);
    if (value === null) throw new SlaveError('ENODATA', `no attribute ${name} on ${path}`);
    return { value };
  },

  'fs.setxattr': async ({ path, name, value, flags }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    checkXattr(ctx.access(caller), host, name, true, `setxattr ${path}`);
    if (flags & (XATTR_CREATE | XATTR_REPLACE)) {
      const exists = valueOf(host, name) !== null;
      if (flags & XATTR_CREATE && exists) throw new SlaveError('EEXIST', `attribute ${name} exists on ${path}`);
      if (flags & XATTR_REPLACE && !exists) throw new SlaveError('ENODATA', `no attribute ${name} on ${path}`);
    }
    call(`setxattr ${name}`, () => withXattrPath(host, (p) => xattr().setAttributeSync(p, name, value)));
    return {};
  },

  'fs.listxattr': async ({ path }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    const who = ctx.access(caller);
    who.search(host, `listxattr ${path}`);
    const names = call('listxattr', () => withXattrPath(host, (p) => xattr().listAttributesSync(p)));
    return { names: who.checking ? names.filter((n) => !n.startsWith('trusted.')) : names };
  },

  'fs.removexattr': async ({ path, name }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    checkXattr(ctx.access(caller), host, name, true, `removexattr ${path}`);
    if (valueOf(host, name) === null) throw new SlaveError('ENODATA', `no attribute ${name} on ${path}`);
    call(`removexattr ${name}`, () => withXattrPath(host, (p) => xattr().removeAttributeSync(p, name)));
    return {};
  },
};
