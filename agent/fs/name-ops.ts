/**
 * Ops that add, remove or rename names. None follows a symlink in last place. Each checks what
 * the slave's kernel would check for the request's caller, and what it creates becomes the
 * caller's (caller-access.ts).
 */
import type { Stats } from 'node:fs';
import { posix } from 'node:path';
import {
  MAY_READ, MAY_WRITE, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK, S_ISGID, S_ISUID, SlaveError, owns,
  type Caller,
} from '../../protocol/index.js';
import type { CallerAccess } from '../caller-access.js';
import type { AgentContext, HandlerTable } from '../context.js';
import { lstatWire, madeReply, statToWire } from './stat-attr.js';

/**
 * may_linkat's rule under protected_hardlinks: a caller may link to a file it does not own only
 * if it is a regular file it may read and write that would give no privilege.
 */
function mayLinkTo(ctx: AgentContext, who: CallerAccess, st: Stats, host: string): boolean {
  const caller = who.caller as Caller;
  if (!who.checking || !ctx.backend.files.hardlinksProtected() || owns(caller, st)) return true;
  if (!st.isFile() || (st.mode & S_ISUID) !== 0) return false;
  if ((st.mode & (S_ISGID | 0o010)) === (S_ISGID | 0o010)) return false;
  return who.allows(st, host, MAY_READ | MAY_WRITE);
}

/** Which nodes a caller may make: files, FIFOs and sockets; device nodes only as the agent allows. */
function checkNodeType(ctx: AgentContext, who: CallerAccess, mode: number): void {
  const type = mode & S_IFMT;
  if (type === S_IFREG || type === 0 || type === S_IFIFO || type === S_IFSOCK) return;
  if (type === S_IFCHR || type === S_IFBLK) {
    // A master allowed files must not make itself a raw disk of the slave's: refused as in a
    // container without CAP_MKNOD unless the slave's operator allows it.
    if (!ctx.allowDeviceNodes) {
      throw new SlaveError('EPERM', 'this agent does not let masters create device nodes (start it with --allow-device-nodes)');
    }
    if (who.checking) throw new SlaveError('EPERM', 'only root may create device nodes');
    return;
  }
  throw new SlaveError(type === S_IFDIR ? 'EPERM' : 'EINVAL', `mknod cannot create a file of type ${type.toString(8)}`);
}

/** Whether `hostFrom` and `hostTo` are links to one file (only a file with several links can be). */
function sameFile(ctx: AgentContext, hostFrom: string, hostTo: string): boolean {
  try {
    const from = ctx.backend.files.lstat(hostFrom);
    if (from.nlink < 2 || from.isDirectory()) return false;
    const to = ctx.backend.files.lstat(hostTo);
    return to.ino === from.ino && to.dev === from.dev;
  } catch {
    return false; // either missing: rename(2) says what follows
  }
}

export const nameOps: HandlerTable = {
  'fs.unlink': async ({ path }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    ctx.access(caller).removable(host, `unlink ${path}`);
    const kept = ctx.backend.files.unlink(host);
    // A hard link's inode lives on under its other name: what it is now, for the master's cache.
    return kept ? { attr: statToWire(kept) } : {};
  },

  'fs.rename': async ({ from, to, noReplace, exchange }, ctx, caller) => {
    if (noReplace && exchange) throw new SlaveError('EINVAL', `rename ${from}: RENAME_NOREPLACE and RENAME_EXCHANGE together`);
    const hostFrom = ctx.jail.resolve(from);
    const hostTo = ctx.jail.resolve(to);
    const who = ctx.access(caller);
    if (who.checking) {
      who.removable(hostFrom, `rename ${from}`);
      who.removable(hostTo, `rename to ${to}`);
      // A directory moved to another directory has its '..' rewritten: it must be writable (in
      // an exchange, either may be one).
      if (posix.dirname(hostFrom) !== posix.dirname(hostTo)) {
        const moving: [string, string][] = exchange ? [[hostFrom, from], [hostTo, to]] : [[hostFrom, from]];
        for (const [host, path] of moving) {
          const moved = ctx.backend.files.lstat(host);
          if (moved.isDirectory()) who.inode(moved, host, MAY_WRITE, `rename ${path}`);
        }
      }
    }
    // Two links to one file: rename(2) succeeds and leaves both (POSIX), which the master's cache
    // must hear of, or it would show `from` gone.
    const same = !noReplace && !exchange && sameFile(ctx, hostFrom, hostTo);
    if (exchange) ctx.backend.files.renameExchange(hostFrom, hostTo);
    else if (noReplace) ctx.backend.files.renameNoReplace(hostFrom, hostTo);
    else ctx.backend.files.rename(hostFrom, hostTo);
    // A directory moved, or one replaced: what the jail verified under either name is elsewhere.
    ctx.jail.forgetPrefix(ctx.jail.toSlave(hostFrom));
    ctx.jail.forgetPrefix(ctx.jail.toSlave(hostTo));
    return same ? { same: true } : {};
  },

  'fs.link': async ({ existing, path }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    const hostExisting = ctx.jail.resolve(existing);
    const who = ctx.access(caller);
    if (who.checking) {
      who.search(hostExisting, `link ${existing}`);
      who.parent(host, `link ${path}`);
      if (!mayLinkTo(ctx, who, ctx.backend.files.lstat(hostExisting), hostExisting)) {
        throw new SlaveError('EPERM', `link ${existing}: another user's file (fs.protected_hardlinks)`);
      }
    }
    ctx.backend.files.link(hostExisting, host);
    return madeReply(ctx.backend.files, host);
  },

  'fs.symlink': async ({ target, path }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    const who = ctx.access(caller);
    const dir = who.parent(host, `symlink ${path}`);
    ctx.backend.files.symlink(target, host);
    who.own(host, 0o777, dir);
    return madeReply(ctx.backend.files, host);
  },

  'fs.mknod': async ({ path, mode, rdev }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    const who = ctx.access(caller);
    const dir = who.parent(host, `mknod ${path}`);
    checkNodeType(ctx, who, mode);
    await ctx.backend.files.mknod(host, mode, rdev);
    who.own(host, mode, dir);
    return { attr: lstatWire(ctx.backend.files, host) };
  },
};
