/**
 * Attribute ops: one handler each; paths resolve inside the root jail. The calls are
 * synchronous on purpose: metadata syscalls on a local disk take microseconds, while a trip
 * through libuv's thread pool costs about a hundred (sftp-server serves this way too).
 */
import { accessSync, chmodSync, lchownSync, lstatSync, lutimesSync, readlinkSync, statfsSync, truncateSync } from 'node:fs';
import type { HandlerTable } from '../context.js';
import { statToWire, utimeSeconds } from './stat-attr.js';

export const attrOps: HandlerTable = {
  'fs.getattr': async ({ path }, ctx) => ({ attr: statToWire(lstatSync(ctx.jail.resolve(path))) }),

  'fs.access': async ({ path, mode }, ctx) => {
    accessSync(ctx.jail.resolve(path, true), mode);
    return {};
  },

  'fs.statfs': async ({ path }, ctx) => {
    const st = statfsSync(ctx.jail.resolve(path, true));
    return {
      bsize: st.bsize, frsize: st.bsize, blocks: st.blocks, bfree: st.bfree, bavail: st.bavail,
      files: st.files, ffree: st.ffree, namemax: 255,
    };
  },

  'fs.readlink': async ({ path }, ctx) => ({ target: readlinkSync(ctx.jail.resolve(path)) }),

  'fs.chmod': async ({ path, mode }, ctx) => {
    const host = ctx.jail.resolve(path, true);
    chmodSync(host, mode & 0o7777);
    return { attr: statToWire(lstatSync(host)) };
  },

  'fs.chown': async ({ path, uid, gid }, ctx) => {
    const host = ctx.jail.resolve(path);
    lchownSync(host, uid, gid);
    return { attr: statToWire(lstatSync(host)) };
  },

  'fs.utimens': async ({ path, atime, mtime }, ctx) => {
    const host = ctx.jail.resolve(path);
    const before = atime === 'omit' || mtime === 'omit' ? lstatSync(host) : undefined;
    lutimesSync(host, utimeSeconds(atime, before?.atimeMs ?? 0), utimeSeconds(mtime, before?.mtimeMs ?? 0));
    return { attr: statToWire(lstatSync(host)) };
  },

  'fs.truncate': async ({ path, size }, ctx) => {
    const host = ctx.jail.resolve(path, true);
    truncateSync(host, size);
    return { attr: statToWire(lstatSync(host)) };
  },
};
