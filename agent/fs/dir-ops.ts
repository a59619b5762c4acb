/** Directory ops. A listing carries every entry's attributes, so `ls -l` is one round trip. */
import { MAY_EXEC, MAY_READ, SlaveError, type ReaddirEntry } from '../../protocol/index.js';
import type { FilesBackend } from '../backends/files-backend.js';
import { REPLY_OVERHEAD, type AgentContext, type HandlerTable } from '../context.js';
import type { ListedEntry } from './readdir-cursors.js';
import { madeReply, statToWire } from './stat-attr.js';

// Per entry in a reply: the name plus about this much msgpack for its attributes.
const ENTRY_OVERHEAD = 120;

function lstatOrNull(files: FilesBackend, path: string) {
  try {
    return files.lstat(path, { bigint: true });
  } catch {
    return null; // raced with an unlink
  }
}

/**
 * Synchronous: 5,000 lstat calls take a few milliseconds; 5,000 thread-pool trips take far more.
 * `withAttrs` false: names only, for a caller who may read the directory but not search it.
 * Each entry also says whether it has no extended attribute at all (one listxattr each, as
 * cheap as the lstat): `ls -l` and `cp -a` then ask the mount, not the slave, for the ACLs and
 * security labels they probe for every file (issue 24).
 */
function listWithAttrs(files: FilesBackend, hostDir: string, withAttrs: boolean): ListedEntry[] {
  return files.readdir(hostDir).map((name) => {
    if (!withAttrs) return [name, null, false];
    const host = `${hostDir}/${name}`;
    const st = lstatOrNull(files, host);
    return [name, st ? statToWire(st) : null, st !== null && files.hasXattrs(host) === false];
  });
}

/** Takes as many entries as fit in one reply and parks the rest under a cursor. */
function page(entries: ListedEntry[], ctx: AgentContext) {
  const budget = ctx.maxPayload - REPLY_OVERHEAD;
  let used = 0;
  let count = 0;
  for (const [name] of entries) {
    const cost = Buffer.byteLength(name) + ENTRY_OVERHEAD; // escaped bytes: 3, sent as 1
    if (used + cost > budget && count > 0) break;
    used += cost;
    count++;
  }
  const sent = entries.slice(0, count);
  const bare = sent.flatMap(([, , none], i) => (none ? [i] : []));
  return {
    entries: sent.map(([name, attr]): ReaddirEntry => [name, attr]),
    cursor: count === entries.length ? null : ctx.cursors.park(entries.slice(count)),
    ...(bare.length > 0 ? { bare } : {}),
  };
}

export const dirOps: HandlerTable = {
  'fs.readdir': async (args, ctx, caller) => {
    if ('cursor' in args) return page(ctx.cursors.take(args.cursor), ctx);
    const host = ctx.jail.resolve(args.path, true);
    const who = ctx.access(caller);
    const dir = who.need(host, MAY_READ, `readdir ${args.path}`);
    return page(listWithAttrs(ctx.backend.files, host, !dir || who.allows(dir, host, MAY_EXEC)), ctx);
  },

  'fs.mkdir': async ({ path, mode }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    const who = ctx.access(caller);
    const dir = who.parent(host, `mkdir ${path}`);
    ctx.backend.files.mkdir(host, mode & 0o7777);
    who.own(host, mode, dir);
    return madeReply(ctx.backend.files, host);
  },

  'fs.rmdir': async ({ path }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    // '/', '/a/..': an empty export root would go, a change in the directory above it. Linux
    // answers rmdir("/") with EBUSY too.
    if (host === ctx.jail.root) throw new SlaveError('EBUSY', 'the export root cannot be removed');
    ctx.access(caller).removable(host, `rmdir ${path}`);
    ctx.backend.files.rmdir(host);
    ctx.jail.forgetPrefix(ctx.jail.toSlave(host));
    return {};
  },
};
