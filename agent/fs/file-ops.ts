/** Ops on open files, by the handle number `fs.open`/`fs.create` returned. */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { SlaveError } from '../../protocol/index.js';
import { REPLY_OVERHEAD, type AgentContext, type HandlerTable } from '../context.js';
import { statToWire } from './stat-attr.js';

const {
  O_CREAT, O_EXCL, O_APPEND, O_DIRECT, O_NOATIME, O_NOFOLLOW, O_NOCTTY, O_WRONLY, O_RDWR, O_TRUNC,
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

async function openHandle(ctx: AgentContext, slavePath: string, flags: number, mode?: number) {
  const host = await ctx.jail.resolve(slavePath);
  const file = await open(host, flags, mode);
  try {
    const st = await file.stat();
    const fh = ctx.handles.add({ file, slavePath, flags, regular: st.isFile() });
    return { fh, attr: statToWire(st) };
  } catch (err) {
    await file.close();
    throw err;
  }
}

export const fileOps: HandlerTable = {
  'fs.open': async ({ path, flags }, ctx) =>
    openHandle(ctx, path, (flags & ~(STRIPPED | O_CREAT | O_EXCL)) | ADDED),

  'fs.create': async ({ path, flags, mode }, ctx) =>
    openHandle(ctx, path, (flags & ~STRIPPED) | O_CREAT | ADDED, mode & 0o7777),

  'fs.read': async ({ fh, offset, length }, ctx) => {
    const entry = ctx.handles.get(fh);
    const want = Math.min(length, ctx.maxPayload - REPLY_OVERHEAD);
    const buffer = Buffer.allocUnsafe(want);
    let filled = 0;
    // Regular files: fill the buffer unless EOF comes first. Devices and pipes: what is there.
    do {
      const { bytesRead } = await entry.file.read(buffer, filled, want - filled, offset + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    } while (entry.regular && filled < want);
    return { data: buffer.subarray(0, filled) };
  },

  'fs.write': async ({ fh, offset, data }, ctx) => {
    const entry = ctx.handles.get(fh);
    let written = 0;
    while (written < data.length) {
      const { bytesWritten } = await entry.file.write(data, written, data.length - written, offset + written);
      if (bytesWritten === 0) throw new SlaveError('EIO', `write to handle ${fh} made no progress`);
      written += bytesWritten;
    }
    return { written };
  },

  'fs.flush': async ({ fh }, ctx) => {
    ctx.handles.get(fh);
    return {};
  },

  'fs.fsync': async ({ fh, datasync }, ctx) => {
    const { file } = ctx.handles.get(fh);
    await (datasync ? file.datasync() : file.sync());
    return {};
  },

  'fs.release': async ({ fh }, ctx) => {
    await ctx.handles.take(fh).file.close();
    return {};
  },

  'fs.fgetattr': async ({ fh }, ctx) => ({ attr: statToWire(await ctx.handles.get(fh).file.stat()) }),

  'fs.ftruncate': async ({ fh, size }, ctx) => {
    const { file } = ctx.handles.get(fh);
    await file.truncate(size);
    return { attr: statToWire(await file.stat()) };
  },
};
