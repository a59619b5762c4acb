/**
 * Attribute ops: one handler each; paths resolve inside the root jail. The calls are
 * synchronous on purpose: metadata syscalls on a local disk take microseconds, while a trip
 * through libuv's thread pool costs about a hundred (sftp-server serves this way too).
 *
 * Each checks what the slave's kernel would check for the request's caller (caller-access.ts)
 * before doing the change as root.
 */
import {
  MAY_WRITE, S_ISGID, S_ISUID, SlaveError, chmodMode, mayChown, owns, type Caller, type Owned, type TimeSpec,
} from '../../protocol/index.js';
import type { CallerAccess } from '../caller-access.js';
import type { HandlerTable } from '../context.js';
import { lstatWire } from './stat-attr.js';

/**
 * The mode chmod may set: the owner's (less set-group-ID outside its group). Anyone who may
 * write the file may clear its set-user-ID and set-group-ID bits and nothing else: the mount
 * asks for exactly that when a non-owner writes to or truncates such a file (file_remove_privs,
 * which the mount does for the kernel: mount/remote-fs.ts dropSetIdBits).
 */
export function checkedMode(who: CallerAccess, st: Owned, where: string, mode: number, what: string): number {
  if (!who.checking) return mode;
  const caller = who.caller as Caller;
  if (owns(caller, st)) return chmodMode(caller, st, mode);
  // Set-id bits dropped, nothing else changed (the kernel may keep set-group-ID: withoutSetId).
  const setId = S_ISUID | S_ISGID;
  const was = st.mode & 0o7777;
  const dropsPrivilegesOnly = (mode & ~setId) === (was & ~setId) && (mode & setId & ~was) === 0 && mode !== was;
  if (dropsPrivilegesOnly && who.allows(st, where, MAY_WRITE)) return mode;
  throw new SlaveError('EPERM', `${what}: only the owner may change the mode`);
}

export function checkedOwner(who: CallerAccess, st: Owned, uid: number, gid: number, what: string): void {
  if (who.checking && !mayChown(who.caller as Caller, st, uid, gid)) {
    throw new SlaveError('EPERM', `${what}: only root may give a file away, and its owner change its group to one of theirs`);
  }
}

/**
 * utimensat's rule: setting both times to now needs ownership or write permission (EACCES);
 * setting any time to a given value needs ownership (EPERM); leaving both needs nothing.
 */
export function checkedTimes(who: CallerAccess, st: Owned, where: string, atime: TimeSpec, mtime: TimeSpec, what: string): void {
  if (!who.checking || (atime === 'omit' && mtime === 'omit')) return;
  const caller = who.caller as Caller;
  if (owns(caller, st)) return;
  if (atime === 'now' && mtime === 'now') {
    if (who.allows(st, where, MAY_WRITE)) return;
    throw new SlaveError('EACCES', `${what}: permission denied`);
  }
  throw new SlaveError('EPERM', `${what}: only the owner may set a file's times`);
}

export const attrOps: HandlerTable = {
  'fs.getattr': async ({ path }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    ctx.access(caller).search(host, 'stat');
    return { attr: lstatWire(ctx.backend.files, host) };
  },

  'fs.access': async ({ path, mode }, ctx, caller) => {
    const host = ctx.jail.resolve(path, true);
    const who = ctx.access(caller);
    if (who.checking) who.need(host, mode, 'access');
    else ctx.backend.files.access(host, mode);
    return {};
  },

  'fs.statfs': async ({ path }, ctx, caller) => {
    const host = ctx.jail.resolve(path, true);
    ctx.access(caller).search(host, 'statfs');
    const st = ctx.backend.files.statfs(host);
    return {
      bsize: st.bsize, frsize: st.bsize, blocks: st.blocks, bfree: st.bfree, bavail: st.bavail,
      files: st.files, ffree: st.ffree, namemax: 255,
    };
  },

  'fs.readlink': async ({ path }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    ctx.access(caller).search(host, 'readlink');
    return { target: ctx.backend.files.readlink(host) };
  },

  'fs.chmod': async ({ path, mode }, ctx, caller) => {
    const host = ctx.jail.resolve(path, true);
    const who = ctx.access(caller);
    who.search(host, 'chmod');
    const st = who.checking ? ctx.backend.files.stat(host) : undefined;
    ctx.backend.files.chmod(host, (st ? checkedMode(who, st, host, mode, `chmod ${path}`) : mode) & 0o7777);
    return { attr: lstatWire(ctx.backend.files, host) };
  },

  'fs.chown': async ({ path, uid, gid }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    const who = ctx.access(caller);
    who.search(host, 'chown');
    if (who.checking) checkedOwner(who, ctx.backend.files.lstat(host), uid, gid, `chown ${path}`);
    ctx.backend.files.lchown(host, uid, gid);
    return { attr: lstatWire(ctx.backend.files, host) };
  },

  'fs.utimens': async ({ path, atime, mtime }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    const who = ctx.access(caller);
    who.search(host, 'utimens');
    if (who.checking) checkedTimes(who, ctx.backend.files.lstat(host), host, atime, mtime, `utimens ${path}`);
    ctx.backend.files.utimens(host, atime, mtime);
    return { attr: lstatWire(ctx.backend.files, host) };
  },

  'fs.truncate': async ({ path, size }, ctx, caller) => {
    const host = ctx.jail.resolve(path, true);
    ctx.access(caller).need(host, MAY_WRITE, 'truncate');
    ctx.backend.files.truncate(host, size);
    return { attr: lstatWire(ctx.backend.files, host) };
  },
};
