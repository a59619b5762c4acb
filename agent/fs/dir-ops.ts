/** Directory ops. A listing carries every entry's attributes, so `ls -l` is one round trip. */
import { MAY_EXEC, MAY_READ, S_IFDIR, S_IFMT, SlaveError, type ReaddirEntry } from '../../protocol/index.js';
import type { FilesBackend } from '../backends/files-backend.js';
import type { CallerAccess } from '../caller-access.js';
import { REPLY_OVERHEAD, type AgentContext, type HandlerTable } from '../context.js';
import type { ListedEntry } from './readdir-cursors.js';
import { madeReply, statToWire } from './stat-attr.js';

// Per entry in a reply: the name plus about this much msgpack for its attributes.
const ENTRY_OVERHEAD = 120;
/**
 * The most entries listed below a directory with its listing (fs.readdir's `below`): a few ms
 * of lstat and listxattr calls on a warm slave, tens of ms where its inodes must come from disk.
 */
const MAX_BELOW = 512;
/**
 * How long the listings below go on before the agent serves what came meanwhile: a walk's
 * listings are asked ahead of the program, and the program's own next request (find's statfs,
 * a stat, an open) must not wait for them. Cold, one such wait was 49 ms of a 0.32 s `find -ls`.
 */
const BELOW_SLICE_MS = 1;

/** What a reply spends on `entries` (escaped bytes count 3, sent as 1: an overestimate). */
function cost(entries: ListedEntry[]): number {
  let used = 0;
  for (const [name] of entries) used += Buffer.byteLength(name) + ENTRY_OVERHEAD;
  return used;
}

function bareOf(entries: ListedEntry[]): number[] {
  return entries.flatMap(([, , none], i) => (none ? [i] : []));
}

function subdirs(dir: string, entries: ListedEntry[]): string[] {
  return entries.flatMap(([name, attr]) => (attr && ((attr[0] ?? 0) & S_IFMT) === S_IFDIR ? [dir === '/' ? `/${name}` : `${dir}/${name}`] : []));
}

/**
 * The whole listings of the directories below `dir` (its `entries` listed), then of each of
 * `then` and those below it, depth first in listing order, as long as they fit `maxEntries` and
 * `bytes`: a program that lists a directory mostly lists those next (find, du, rm -rf, git
 * status: `then` are the directories the master knows come after `dir` in its parent). One the
 * caller may not read, or a filesystem is mounted on (`mounts`), is left out. Every
 * BELOW_SLICE_MS the requests that came meanwhile are served (a directory listed after one of
 * them may show its change: the mount keeps no listing of a directory it changed since asking,
 * dir-listings.ts).
 */
async function listBelow(
  ctx: AgentContext, who: CallerAccess, dir: string, mounts: Set<string>, entries: ListedEntry[], then: string[], maxEntries: number, bytes: number,
): Promise<[string, ReaddirEntry[], number[]][]> {
  const below: [string, ReaddirEntry[], number[]][] = [];
  const stack = [...then].reverse().concat(subdirs(dir, entries).reverse());
  let count = 0;
  let sliceStart = performance.now();
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    if (performance.now() - sliceStart >= BELOW_SLICE_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
    let listed: ListedEntry[];
    let withAttrs: boolean;
    try {
      const host = ctx.jail.resolve(next, true);
      if (mounts.has(host)) continue; // listed when a program asks for it
      const st = who.need(host, MAY_READ, `readdir ${next}`);
      withAttrs = !st || who.allows(st, host, MAY_EXEC);
      listed = listWithAttrs(ctx.backend.files, host, withAttrs, mounts);
    } catch {
      continue; // not the caller's to list, or gone: its own readdir will say
    }
    const spent = cost(listed) + Buffer.byteLength(next) + ENTRY_OVERHEAD;
    if (count + listed.length > maxEntries || spent > bytes) break;
    count += listed.length;
    bytes -= spent;
    below.push([next, listed.map(([name, attr]): ReaddirEntry => [name, attr]), bareOf(listed)]);
    if (withAttrs) stack.push(...subdirs(next, listed).reverse());
  }
  return below;
}

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
function listWithAttrs(files: FilesBackend, hostDir: string, withAttrs: boolean, mounts: Set<string>): ListedEntry[] {
  return files.readdir(hostDir).map((name) => {
    if (!withAttrs) return [name, null, false];
    const host = `${hostDir}/${name}`;
    // A mount point's attributes come when that name is asked for (FilesBackend.mountPoints).
    if (mounts.has(host)) return [name, null, false];
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
  const bare = bareOf(sent);
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
    const withAttrs = !dir || who.allows(dir, host, MAY_EXEC);
    const mounts = ctx.backend.files.mountPoints();
    const listed = listWithAttrs(ctx.backend.files, host, withAttrs, mounts);
    const first = page(listed, ctx);
    if (!args.below || !withAttrs || first.cursor !== null) return first;
    const room = ctx.maxPayload - REPLY_OVERHEAD - cost(listed);
    const below = await listBelow(ctx, who, args.path, mounts, listed, args.then ?? [], Math.min(args.below, MAX_BELOW), room);
    return below.length > 0 ? { ...first, below } : first;
  },

  'fs.mkdir': async ({ path, mode }, ctx, caller) => {
    const host = ctx.jail.resolve(path);
    const who = ctx.access(caller);
    const dir = who.parent(host, `mkdir ${path}`);
    ctx.backend.files.mkdir(host, mode & 0o7777);
    who.own(host, mode, dir);
    ctx.changes.madeDirectory(path, host);
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
