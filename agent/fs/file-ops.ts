/**
 * Ops on open files, by the handle number `fs.open`/`fs.create` returned.
 *
 * Writes are synchronous, like every metadata op: the agent thereby applies the requests of one
 * connection in the order they arrive, and the mount can send a write and then a utimens or a
 * read without waiting for the write's reply (docs/protocol.md, "Ordering"). Reads and fsyncs
 * are asynchronous: a cold read or a flush to disk can take long, and must not hold up others.
 */
import {
  closeSync, constants, existsSync, fchmodSync, fchownSync, fdatasync, fstatSync, fsync, ftruncateSync,
  openSync, read, writeSync,
} from 'node:fs';
import { promisify } from 'node:util';
import { SlaveError, openAccess, type Caller } from '../../protocol/index.js';
import { REPLY_OVERHEAD, type AgentContext, type HandlerTable } from '../context.js';
import type { CallerAccess } from '../caller-access.js';
import { agentMetrics } from '../agent-metrics.js';
import { checkedMode, checkedOwner, checkedTimes } from './attr-ops.js';
import { setFileTimes } from './exact-times.js';
import { fstatWire, lstatWire, statToWire } from './stat-attr.js';
import { fsPath } from '../host-path.js';

const readAsync = promisify(read);
const fsyncAsync = promisify(fsync);
const fdatasyncAsync = promisify(fdatasync);

const {
  O_CREAT, O_EXCL, O_APPEND, O_DIRECT, O_NOATIME, O_NOFOLLOW, O_NOCTTY, O_NONBLOCK, O_WRONLY, O_RDWR, O_TRUNC,
} = constants;

// The master writes at explicit offsets (the kernel already placed O_APPEND writes at the end),
// and never with O_DIRECT's alignment rules; O_NOATIME fails for files we do not own.
const STRIPPED = O_APPEND | O_DIRECT | O_NOATIME;
// Paths reaching us were resolved component by component by the master's kernel: a symlink in
// last place means the master's view is stale, and following it could leave the root.
const ADDED = O_NOFOLLOW | O_NOCTTY;

export function writesWith(flags: number): boolean {
  return (flags & (O_WRONLY | O_RDWR)) !== 0 || (flags & O_TRUNC) !== 0;
}

/**
 * Regular files and directories only. The master's kernel serves FIFOs and device nodes on the
 * mount itself, and devices reach the agent through `dev.open` and its --dev-allow policy, so a
 * request to open anything else here is not from our mount, and must not bypass that policy or
 * block: a FIFO waits in open(2) for its other end, and four such waits would hold every thread
 * Node reads and syncs files with. O_NONBLOCK makes open(2) return at once whatever the path
 * has become since the master looked; Linux ignores the flag for regular files and directories,
 * so it changes nothing for what we keep open.
 */
function openHandle(
  ctx: AgentContext, slavePath: string, requested: number, flags: number, mode?: number, who?: CallerAccess,
  host = ctx.jail.resolve(slavePath),
) {
  // Only a file that exists is checked: one made by this open was checked by create (its
  // creator may then write it whatever its mode says, as open(O_CREAT, 0444) may).
  if (who?.checking && (flags & O_CREAT) === 0) who.need(host, openAccess(requested), `open ${slavePath}`);
  const openWith = (f: number) => openSync(fsPath(host), f | O_NONBLOCK, mode);
  let fd: number;
  try {
    fd = openWith(flags);
  } catch (err) {
    // An append-only file (chattr +a) opens for writing only with O_APPEND, which we strip. It
    // is safe to keep there: the master's kernel places every write of such an opener at the end.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM' || (requested & O_APPEND) === 0) throw err;
    fd = openWith(flags | O_APPEND);
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (st.isCharacterDevice() || st.isBlockDevice()) {
      throw new SlaveError('EACCES', `${slavePath} is a device: devices open through the device mount, as --dev-allow permits`);
    }
    if (!st.isFile() && !st.isDirectory()) {
      throw new SlaveError('ENXIO', `${slavePath} is a FIFO or socket: the master's kernel serves those, the agent does not open them`);
    }
    const fh = ctx.handles.add({ fd, slavePath, flags, regular: st.isFile() });
    return { fh, attr: statToWire(st) };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * open(O_CREAT): an existing file is opened as `fs.open` would (EEXIST with O_EXCL); a new one
 * needs write and search on its directory and becomes the caller's.
 */
function create(ctx: AgentContext, slavePath: string, flags: number, mode: number, caller: Caller | undefined) {
  const who = ctx.access(caller);
  const base = (flags & ~STRIPPED) | ADDED;
  if (!who.active) return openHandle(ctx, slavePath, flags, base | O_CREAT, mode & 0o7777);
  const host = ctx.jail.resolve(slavePath);
  const openExisting = () => openHandle(ctx, slavePath, flags, base & ~O_CREAT, undefined, who, host);
  if ((flags & O_EXCL) === 0 && existsSync(fsPath(host))) return openExisting();
  const dir = who.parent(host, `create ${slavePath}`);
  let opened: ReturnType<typeof openHandle>;
  try {
    opened = openHandle(ctx, slavePath, flags, base | O_CREAT | O_EXCL, mode & 0o7777, undefined, host);
  } catch (err) {
    // Made by someone else since we looked: then it is theirs, and we open it.
    if ((flags & O_EXCL) === 0 && (err as NodeJS.ErrnoException).code === 'EEXIST') return openExisting();
    throw err;
  }
  try {
    who.own(host, mode, dir);
  } catch (err) {
    void ctx.handles.close(opened.fh);
    throw err;
  }
  return { ...opened, attr: lstatWire(host) };
}

export const fileOps: HandlerTable = {
  'fs.open': async ({ path, flags }, ctx, caller) =>
    openHandle(ctx, path, flags, (flags & ~(STRIPPED | O_CREAT | O_EXCL)) | ADDED, undefined, ctx.access(caller)),

  'fs.create': async ({ path, flags, mode }, ctx, caller) => create(ctx, path, flags, mode, caller),

  'fs.read': async ({ fh, offset, length }, ctx) => ctx.handles.use(fh, async ({ fd, regular }) => {
    let want = Math.min(length, ctx.maxPayload - REPLY_OVERHEAD);
    // Allocate what the file holds, not what was asked for: read-ahead asks for whole chunks.
    if (regular) want = Math.min(want, Math.max(0, fstatSync(fd).size - offset));
    // With the codec's headroom in front, so the reply is built around the data where it was
    // read instead of being copied into a message of its own (protocol/codec.ts); large ones
    // in memory used again once the reply is sent (read-buffers.ts).
    const buffer = ctx.readBuffers.take(want);
    let filled = 0;
    try {
      // Fill the buffer unless EOF comes first (a directory's handle gets EISDIR from read(2)).
      do {
        const { bytesRead } = await readAsync(fd, buffer, filled, want - filled, offset + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      } while (regular && filled < want);
    } catch (err) {
      ctx.readBuffers.giveBack(buffer);
      throw err;
    }
    agentMetrics.bytes.inc({ direction: 'read' }, filled);
    return { data: buffer.subarray(0, filled) };
  }),

  'fs.write': async ({ fh, offset, data }, ctx) => {
    const { fd, slavePath } = ctx.handles.get(fh);
    const before = ctx.commits.journaling ? { hostPath: ctx.jail.resolve(slavePath), size: fstatSync(fd).size } : undefined;
    let written = 0;
    while (written < data.length) {
      const n = writeSync(fd, data, written, data.length - written, offset + written);
      if (n === 0) throw new SlaveError('EIO', `write to handle ${fh} made no progress`);
      written += n;
    }
    const seq = ctx.commits.wrote(fd, offset, written, before);
    agentMetrics.bytes.inc({ direction: 'written' }, written);
    return { written, seq, durable: ctx.commits.durable };
  },

  'fs.commit': async ({ force }, ctx) => ({ durable: force ? await ctx.commits.commit() : ctx.commits.durable }),

  'fs.flush': async ({ fh }, ctx) => {
    ctx.handles.get(fh);
    return {};
  },

  'fs.fsync': async ({ fh, datasync }, ctx) => ctx.handles.use(fh, async ({ fd }) => {
    await (datasync ? fdatasyncAsync(fd) : fsyncAsync(fd));
    return {};
  }),

  'fs.release': async ({ fh }, ctx) => {
    await ctx.handles.close(fh);
    return {};
  },

  'fs.fgetattr': async ({ fh }, ctx) => ({ attr: fstatWire(ctx.handles.get(fh).fd) }),

  'fs.ftruncate': async ({ fh, size }, ctx) => ctx.handles.use(fh, async ({ fd }) => {
    ftruncateSync(fd, size);
    return { attr: fstatWire(fd) };
  }),

  'fs.fchmod': async ({ fh, mode }, ctx, caller) => ctx.handles.use(fh, async ({ fd }) => {
    const who = ctx.access(caller);
    fchmodSync(fd, (who.checking ? checkedMode(who, fstatSync(fd), `/proc/self/fd/${fd}`, mode, `fchmod ${fh}`) : mode) & 0o7777);
    return { attr: fstatWire(fd) };
  }),

  'fs.fchown': async ({ fh, uid, gid }, ctx, caller) => ctx.handles.use(fh, async ({ fd }) => {
    const who = ctx.access(caller);
    if (who.checking) checkedOwner(who, fstatSync(fd), uid, gid, `fchown ${fh}`);
    fchownSync(fd, uid, gid);
    return { attr: fstatWire(fd) };
  }),

  'fs.futimens': async ({ fh, atime, mtime }, ctx, caller) => ctx.handles.use(fh, async ({ fd }) => {
    const who = ctx.access(caller);
    if (who.checking) checkedTimes(who, fstatSync(fd), `/proc/self/fd/${fd}`, atime, mtime, `futimens ${fh}`);
    setFileTimes(fd, atime, mtime);
    return { attr: fstatWire(fd) };
  }),
};
