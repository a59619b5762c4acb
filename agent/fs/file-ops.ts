/**
 * Ops on open files, by the handle number `fs.open`/`fs.create` returned.
 *
 * Writes are synchronous, like every metadata op: the agent thereby applies the requests of one
 * connection in the order they arrive, and the mount can send a write and then a utimens or a
 * read without waiting for the write's reply (docs/protocol.md, "Ordering"). Reads and fsyncs
 * are asynchronous: a cold read or a flush to disk can take long, and must not hold up others.
 */
import { constants } from 'node:fs';
import { SlaveError, attrFromWire, openAccess, readsWith, type Caller } from '../../protocol/index.js';
import { REPLY_OVERHEAD, type AgentContext, type HandlerTable } from '../context.js';
import type { CallerAccess } from '../caller-access.js';
import { agentMetrics } from '../agent-metrics.js';
import { checkedMode, checkedOwner, checkedTimes } from './attr-ops.js';
import { bareOf, fstatWire, madeReply, statToWire } from './stat-attr.js';

const { O_CREAT, O_EXCL, O_WRONLY, O_RDWR, O_TRUNC } = constants;
/** fs.copyrange copies this much at a time, other requests served between. */
const COPY_PIECE = 8 << 20;

export function writesWith(flags: number): boolean {
  return (flags & (O_WRONLY | O_RDWR)) !== 0 || (flags & O_TRUNC) !== 0;
}

/**
 * Regular files and directories only. The master's kernel serves FIFOs and device nodes on the
 * mount itself, and devices reach the agent through `dev.open` and its --dev-allow policy, so a
 * request to open anything else here is not from our mount, and must not bypass that policy (nor
 * block: the backend's open never waits). `flags`: the master's, with O_CREAT and O_EXCL as this
 * open wants them (files-backend.ts, openFile).
 */
function openHandle(
  ctx: AgentContext, slavePath: string, flags: number, mode?: number, who?: CallerAccess,
  host = ctx.jail.resolve(slavePath),
) {
  // Only a file that exists is checked: one made by this open was checked by create (its
  // creator may then write it whatever its mode says, as open(O_CREAT, 0444) may).
  if (who?.checking && (flags & O_CREAT) === 0) who.need(host, openAccess(flags), `open ${slavePath}`);
  const files = ctx.backend.files;
  const fd = files.openFile(host, flags, mode);
  try {
    const st = files.fstat(fd, { bigint: true });
    if (st.isCharacterDevice() || st.isBlockDevice()) {
      throw new SlaveError('EACCES', `${slavePath} is a device: devices open through the device mount, as --dev-allow permits`);
    }
    if (!st.isFile() && !st.isDirectory()) {
      throw new SlaveError('ENXIO', `${slavePath} is a FIFO or socket: the master's kernel serves those, the agent does not open them`);
    }
    const fh = ctx.handles.add({ fd, slavePath, flags, regular: st.isFile(), inode: `${st.dev}:${st.ino}` });
    return { fh, attr: statToWire(st) };
  } catch (err) {
    files.closeNow(fd);
    throw err;
  }
}

/**
 * open(O_CREAT): an existing file is opened as `fs.open` would (EEXIST with O_EXCL); a new one
 * needs write and search on its directory and becomes the caller's.
 */
function create(ctx: AgentContext, slavePath: string, flags: number, mode: number, caller: Caller | undefined) {
  const who = ctx.access(caller);
  const host = ctx.jail.resolve(slavePath);
  if (!who.active) {
    const opened = openHandle(ctx, slavePath, flags | O_CREAT, mode & 0o7777, undefined, host);
    return { ...opened, ...bareOf(ctx.backend.files, host) };
  }
  const openExisting = () => openHandle(ctx, slavePath, flags & ~O_CREAT, undefined, who, host);
  if ((flags & O_EXCL) === 0 && ctx.backend.files.exists(host)) return openExisting();
  const dir = who.parent(host, `create ${slavePath}`);
  let opened: ReturnType<typeof openHandle>;
  try {
    opened = openHandle(ctx, slavePath, flags | O_CREAT | O_EXCL, mode & 0o7777, undefined, host);
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
  return { ...opened, ...madeReply(ctx.backend.files, host) };
}

export const fileOps: HandlerTable = {
  'fs.open': async ({ path, flags, whole, handle }, ctx, caller, origin) => {
    const opened = openHandle(ctx, path, flags & ~(O_CREAT | O_EXCL), undefined, ctx.access(caller));
    // Named before this handler's first await: the master's next requests may use the name.
    if (handle !== undefined && origin) ctx.handles.name(origin, handle, opened.fh);
    const { size } = attrFromWire(opened.attr);
    if (whole === undefined || !readsWith(flags) || size > whole || size > ctx.maxPayload - REPLY_OVERHEAD) return opened;
    return ctx.handles.use(opened.fh, async ({ fd, regular }) => {
      if (!regular) return opened;
      // The size it had at open (at most `whole`), and one byte more to see whether it grew since:
      // then it is not sent whole, and its reads ask as they would have.
      const buffer = Buffer.allocUnsafe(size + 1);
      let filled = 0;
      for (;;) {
        const n = await ctx.backend.files.read(fd, buffer, filled, size + 1 - filled, filled);
        if (n === 0) break;
        filled += n;
        if (filled > size) return opened;
      }
      agentMetrics.bytes.inc({ direction: 'read' }, filled);
      return { ...opened, data: buffer.subarray(0, filled) };
    });
  },

  'fs.create': async ({ path, flags, mode, handle }, ctx, caller, origin) => {
    const made = create(ctx, path, flags, mode, caller);
    // Named before this handler's first await: the master's next requests may use the name.
    if (handle !== undefined && origin) ctx.handles.name(origin, handle, made.fh);
    return made;
  },

  'fs.read': async ({ fh, offset, length }, ctx) => ctx.handles.use(fh, async ({ fd, regular }) => {
    let want = Math.min(length, ctx.maxPayload - REPLY_OVERHEAD);
    // Allocate what the file holds, not what was asked for: read-ahead asks for whole chunks.
    if (regular) want = Math.min(want, Math.max(0, ctx.backend.files.fstat(fd).size - offset));
    // With the codec's headroom in front, so the reply is built around the data where it was
    // read instead of being copied into a message of its own (protocol/codec.ts); large ones
    // in memory used again once the reply is sent (read-buffers.ts).
    const buffer = ctx.readBuffers.take(want);
    let filled = 0;
    try {
      // Fill the buffer unless EOF comes first (a directory's handle gets EISDIR from read(2)).
      do {
        const bytesRead = await ctx.backend.files.read(fd, buffer, filled, want - filled, offset + filled);
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
    const { fd, slavePath, inode } = ctx.handles.get(fh);
    const files = ctx.backend.files;
    const before = ctx.commits.journaling ? { hostPath: ctx.jail.resolve(slavePath), size: files.fstat(fd).size } : undefined;
    let written = 0;
    while (written < data.length) {
      const n = files.write(fd, data, written, data.length - written, offset + written);
      if (n === 0) throw new SlaveError('EIO', `write to handle ${fh} made no progress`);
      written += n;
    }
    const seq = ctx.commits.wrote(fd, offset, written, before, inode);
    agentMetrics.bytes.inc({ direction: 'written' }, written);
    return { written, seq, durable: ctx.commits.durable };
  },

  'fs.commit': async ({ force }, ctx) => ({ durable: force ? await ctx.commits.commit() : ctx.commits.durable }),

  'fs.flush': async ({ fh }, ctx) => {
    ctx.handles.get(fh);
    return {};
  },

  'fs.fsync': async ({ fh, datasync }, ctx) => ctx.handles.use(fh, async ({ fd }) => {
    await (datasync ? ctx.backend.files.fdatasync(fd) : ctx.backend.files.fsync(fd));
    return {};
  }),

  'fs.release': async ({ fh }, ctx) => {
    ctx.handles.get(fh); // EBADF for a handle not open
    ctx.locks.released(`fs:${fh}`); // now: the descriptor may stay open until the next commit
    // The handle is gone at once (a later request naming it gets EBADF). The descriptor's close,
    // which waits for reads still running and which a filesystem may make slow (ext4 starts the
    // writeback of a file truncated and written again), goes on behind the reply: a release
    // travels with the next file's requests, which would wait for it.
    ctx.handles.close(fh).catch((err: unknown) => { ctx.log.warn({ err, fh }, 'closing a released file failed'); });
    return {};
  },

  'fs.fgetattr': async ({ fh }, ctx) => ({ attr: fstatWire(ctx.backend.files, ctx.handles.get(fh).fd) }),

  'fs.ftruncate': async ({ fh, size }, ctx) => ctx.handles.use(fh, async ({ fd }) => {
    ctx.backend.files.ftruncate(fd, size);
    return { attr: fstatWire(ctx.backend.files, fd) };
  }),

  'fs.flock': async ({ fh, lock }, ctx) => ctx.handles.use(fh, async (file) => {
    if (!ctx.backend.files.flock(file.fd, lock)) throw new SlaveError('EWOULDBLOCK', `flock ${lock}: another open file holds a lock on it`);
    // Asked for again by its master every third of the lease (lock-leases.ts).
    if (lock === 'un') ctx.locks.dropped(`fs:${fh}`);
    else ctx.locks.taken(`fs:${fh}`, file.fd, file.slavePath, () => ctx.handles.find(fh) === file);
    return {};
  }),

  'fs.fallocate': async ({ fh, mode, offset, length }, ctx) => ctx.handles.use(fh, async ({ fd }) => {
    ctx.backend.files.fallocate(fd, mode, offset, length);
    return { attr: fstatWire(ctx.backend.files, fd) };
  }),

  // In pieces of COPY_PIECE: the agent serves other requests between them.
  'fs.copyrange': async ({ source, sourceOffset, fh, offset, length }, ctx) => ctx.handles.use(source, async (from) => ctx.handles.use(fh, async ({ fd }) => {
    const files = ctx.backend.files;
    let copied = 0;
    while (copied < length) {
      let n: number;
      try {
        n = files.copyRange(from.fd, sourceOffset + copied, fd, offset + copied, Math.min(COPY_PIECE, length - copied));
      } catch (err) {
        if (copied === 0) throw err;
        break; // as copy_file_range(2): what was copied is answered, and the caller's next call meets the error
      }
      if (n === 0) break;
      copied += n;
      if (copied < length) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    // On the disk before it is answered: the master holds no copy of these bytes to write again.
    if (copied > 0) await files.fdatasync(fd);
    return { copied, attr: fstatWire(files, fd) };
  })),

  'fs.lseek': async ({ fh, offset, whence }, ctx) => ctx.handles.use(fh, async ({ fd }) => ({ offset: ctx.backend.files.seekData(fd, offset, whence) })),

  'fs.fchmod': async ({ fh, mode }, ctx, caller) => ctx.handles.use(fh, async ({ fd }) => {
    const files = ctx.backend.files;
    const who = ctx.access(caller);
    files.fchmod(fd, (who.checking ? checkedMode(who, files.fstat(fd), `/proc/self/fd/${fd}`, mode, `fchmod ${fh}`) : mode) & 0o7777);
    return { attr: fstatWire(files, fd) };
  }),

  'fs.fchown': async ({ fh, uid, gid }, ctx, caller) => ctx.handles.use(fh, async ({ fd }) => {
    const files = ctx.backend.files;
    const who = ctx.access(caller);
    if (who.checking) checkedOwner(who, files.fstat(fd), uid, gid, `fchown ${fh}`);
    files.fchown(fd, uid, gid);
    return { attr: fstatWire(files, fd) };
  }),

  'fs.futimens': async ({ fh, atime, mtime }, ctx, caller) => ctx.handles.use(fh, async ({ fd }) => {
    const files = ctx.backend.files;
    const who = ctx.access(caller);
    if (who.checking) checkedTimes(who, files.fstat(fd), `/proc/self/fd/${fd}`, atime, mtime, `futimens ${fh}`);
    files.futimens(fd, atime, mtime);
    return { attr: fstatWire(files, fd) };
  }),
};
