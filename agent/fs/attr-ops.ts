/** Attribute ops: one handler each; paths resolve inside the root jail. */
import { access, chmod, lchown, lstat, lutimes, readlink, statfs, truncate } from 'node:fs/promises';
import type { TimeSpec } from '../../protocol/index.js';
import type { HandlerTable } from '../context.js';
import { statToWire } from './stat-attr.js';

/** utimensat's time argument in the seconds Node's utimes takes; 'omit' keeps `current`. */
function seconds(spec: TimeSpec, currentMs: number): number {
  if (spec === 'now') return Date.now() / 1000;
  if (spec === 'omit') return currentMs / 1000;
  return spec / 1000;
}

export const attrOps: HandlerTable = {
  'fs.getattr': async ({ path }, ctx) => ({ attr: statToWire(await lstat(await ctx.jail.resolve(path))) }),

  'fs.access': async ({ path, mode }, ctx) => {
    await access(await ctx.jail.resolve(path, true), mode);
    return {};
  },

  'fs.statfs': async ({ path }, ctx) => {
    const st = await statfs(await ctx.jail.resolve(path, true));
    return {
      bsize: st.bsize, frsize: st.bsize, blocks: st.blocks, bfree: st.bfree, bavail: st.bavail,
      files: st.files, ffree: st.ffree, namemax: 255,
    };
  },

  'fs.readlink': async ({ path }, ctx) => ({ target: await readlink(await ctx.jail.resolve(path)) }),

  'fs.chmod': async ({ path, mode }, ctx) => {
    const host = await ctx.jail.resolve(path, true);
    await chmod(host, mode & 0o7777);
    return { attr: statToWire(await lstat(host)) };
  },

  'fs.chown': async ({ path, uid, gid }, ctx) => {
    const host = await ctx.jail.resolve(path);
    await lchown(host, uid, gid);
    return { attr: statToWire(await lstat(host)) };
  },

  'fs.utimens': async ({ path, atime, mtime }, ctx) => {
    const host = await ctx.jail.resolve(path);
    const before = atime === 'omit' || mtime === 'omit' ? await lstat(host) : undefined;
    await lutimes(host, seconds(atime, before?.atimeMs ?? 0), seconds(mtime, before?.mtimeMs ?? 0));
    return { attr: statToWire(await lstat(host)) };
  },

  'fs.truncate': async ({ path, size }, ctx) => {
    const host = await ctx.jail.resolve(path, true);
    await truncate(host, size);
    return { attr: statToWire(await lstat(host)) };
  },
};
