/** Directory ops. A listing carries every entry's attributes, so `ls -l` is one round trip. */
import { lstat, mkdir, readdir, rmdir } from 'node:fs/promises';
import type { ReaddirEntry } from '../../protocol/index.js';
import { REPLY_OVERHEAD, type AgentContext, type HandlerTable } from '../context.js';
import { statToWire } from './stat-attr.js';

// lstat calls in flight per listing: enough to keep libuv's pool busy, few enough to be fair.
const LSTAT_BATCH = 64;
// Per entry in a reply: the name plus about this much msgpack for its attributes.
const ENTRY_OVERHEAD = 120;

async function listWithAttrs(hostDir: string): Promise<ReaddirEntry[]> {
  const names = await readdir(hostDir);
  const entries: ReaddirEntry[] = [];
  for (let i = 0; i < names.length; i += LSTAT_BATCH) {
    const batch = names.slice(i, i + LSTAT_BATCH);
    const stats = await Promise.all(batch.map((name) => lstat(`${hostDir}/${name}`).catch(() => null)));
    batch.forEach((name, j) => {
      const st = stats[j];
      entries.push([name, st ? statToWire(st) : null]); // null: raced with an unlink
    });
  }
  return entries;
}

/** Takes as many entries as fit in one reply and parks the rest under a cursor. */
function page(entries: ReaddirEntry[], ctx: AgentContext) {
  const budget = ctx.maxPayload - REPLY_OVERHEAD;
  let used = 0;
  let count = 0;
  for (const [name] of entries) {
    const cost = Buffer.byteLength(name) + ENTRY_OVERHEAD;
    if (used + cost > budget && count > 0) break;
    used += cost;
    count++;
  }
  if (count === entries.length) return { entries, cursor: null };
  return { entries: entries.slice(0, count), cursor: ctx.cursors.park(entries.slice(count)) };
}

export const dirOps: HandlerTable = {
  'fs.readdir': async (args, ctx) => {
    if ('cursor' in args) return page(ctx.cursors.take(args.cursor), ctx);
    return page(await listWithAttrs(await ctx.jail.resolve(args.path, true)), ctx);
  },

  'fs.mkdir': async ({ path, mode }, ctx) => {
    const host = await ctx.jail.resolve(path);
    await mkdir(host, mode & 0o7777);
    return { attr: statToWire(await lstat(host)) };
  },

  'fs.rmdir': async ({ path }, ctx) => {
    await rmdir(await ctx.jail.resolve(path));
    return {};
  },
};
